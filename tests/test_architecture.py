"""The architecture as written is the architecture as imported.

docs/architecture.md's layer table lists every module under a section header; the sections
run from the top layer down. These tests read that table and the import graph (grimp, the
graph `lint-imports` checks, imports inside functions included; ``if TYPE_CHECKING:``
imports never run, so they are left out) and check that the two agree, that no module
imports itself back through others, and that pyproject's import-linter contracts stay
complete as modules are added.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath

import grimp
import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"
#: Where each root package's files are, relative to the repository.
PACKAGES = {"tracker_ci": "tracker_ci", "tracker_server": "server/tracker_server"}
#: What the server may import from the client (and the client package, for __version__).
SERVER_MAY_IMPORT = ("tracker_ci.models", "tracker_ci.wire", "tracker_ci.exceptions")

#: Cycles known today, each with the change that removes it; the test fails when one
#: is gone, so that its line goes too.
KNOWN_CYCLES: list[set[str]] = []


@cache
def graph() -> grimp.ImportGraph:
    """Both packages' imports, TYPE_CHECKING ones aside."""
    return grimp.build_graph(*PACKAGES, cache_dir=None, exclude_type_checking_imports=True)


def module_path(module: str) -> str:
    """``tracker_server.store.locks`` -> ``server/tracker_server/store/locks.py`` (a
    package: its directory, ending in ``/``)."""
    root, _, rest = module.partition(".")
    path = PACKAGES[root] + ("/" + rest.replace(".", "/") if rest else "")
    return path + "/" if (ROOT / path).is_dir() else path + ".py"


def our_modules() -> list[str]:
    """Every module of both packages, migrations aside."""
    return sorted(m for m in graph().modules if ".migrations" not in m)


# ------------------------------------------------------------------ the table
@dataclass(frozen=True)
class Line:
    """One path of the layer table and the section (0 = the top) it is listed in."""

    path: str
    section: int
    header: str

    @property
    def pattern(self) -> str:
        """The path as a glob: ``wire/<resource>.py`` is ``wire/*.py``."""
        return re.sub(r"<[^>]+>", "*", self.path)

    def covers(self, path: str) -> int:
        """How exactly this line names ``path``: 3 the file, 2 a glob, 1 a directory, 0 not."""
        if "*" in self.pattern:
            pattern, candidate = PurePosixPath(self.pattern), PurePosixPath(path)
            same_directory = candidate.parent == pattern.parent
            return 2 if same_directory and fnmatch.fnmatch(candidate.name, pattern.name) else 0
        if self.path.endswith("/"):
            return 1 if path.startswith(self.path) else 0
        return 3 if path == self.path else 0


@cache
def table() -> list[Line]:
    """The lines of the layer table's code block, in order."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## The layers", 1)[1]
    block = section.split("```", 2)[1]
    lines: list[Line] = []
    index, header = -1, ""
    for raw in block.splitlines():
        if raw.startswith("──"):
            index, header = index + 1, raw.strip("─ ")
        elif raw and not raw[0].isspace():
            paths = re.split(r"\s{2,}", raw, maxsplit=1)[0]
            for path in (p.strip() for p in paths.split(",")):
                lines.append(Line(path, index, header))
    return lines


def line_of(path: str) -> Line | None:
    """The table's most exact line for a module's path (a package's: its directory's)."""
    best, exactness = None, 0
    for line in table():
        found = line.covers(path)
        if found > exactness:
            best, exactness = line, found
    return best


def python_lines() -> list[Line]:
    return [line for line in table() if line.path.startswith(tuple(PACKAGES.values()))]


def test_the_table_has_sections_and_lines() -> None:
    assert len({line.section for line in table()}) >= 4
    assert len(python_lines()) >= 40


def test_every_module_the_table_lists_exists() -> None:
    missing = []
    for line in table():
        if "*" in line.pattern:
            if not list(ROOT.glob(line.pattern)):
                missing.append(line.path)
        elif not (ROOT / line.path).exists():
            missing.append(line.path)
    assert not missing, f"docs/architecture.md lists paths that do not exist: {missing}"


def test_every_module_is_in_the_table() -> None:
    unlisted = [
        module_path(module)
        for module in our_modules()
        if not module_path(module).endswith("/") and line_of(module_path(module)) is None
    ]
    assert not unlisted, f"add a line to docs/architecture.md's layer table for {unlisted}"


def test_a_lower_layer_never_imports_a_higher_one() -> None:
    upward = []
    for importer in our_modules():
        above = line_of(module_path(importer))
        if above is None:
            continue
        for imported in graph().find_modules_directly_imported_by(importer):
            below = line_of(module_path(imported))
            if below is not None and below.section < above.section:
                upward.append(f"{importer} ({above.header}) imports {imported} ({below.header})")
    assert not upward, "imports against the layer order of docs/architecture.md:\n" + "\n".join(
        upward
    )


# -------------------------------------------------------------- the two packages
def test_the_client_never_imports_the_server() -> None:
    found = [
        (importer, imported)
        for importer in our_modules()
        if importer.startswith("tracker_ci")
        for imported in graph().find_modules_directly_imported_by(importer)
        if imported.startswith("tracker_server")
    ]
    assert not found


def test_the_server_imports_only_the_wire_and_the_exceptions_of_the_client() -> None:
    found = [
        (importer, imported)
        for importer in our_modules()
        if importer.startswith("tracker_server")
        for imported in graph().find_modules_directly_imported_by(importer)
        if imported.startswith("tracker_ci")
        and imported != "tracker_ci"  # the package: __version__
        and not any(imported == m or imported.startswith(m + ".") for m in SERVER_MAY_IMPORT)
    ]
    assert not found


def test_the_server_contract_forbids_every_other_client_module() -> None:
    """A new module of tracker_ci joins the forbidden list of pyproject's contract."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    (contract,) = [c for c in contracts if c.get("source_modules") == ["tracker_server"]]
    children = {m for m in graph().find_children("tracker_ci") if m not in SERVER_MAY_IMPORT}
    assert set(contract["forbidden_modules"]) == children


# ------------------------------------------------------------------------ cycles
def import_cycles() -> list[set[str]]:
    """Groups of modules that import each other, directly or through others (Tarjan)."""
    modules = our_modules()
    edges = {m: sorted(graph().find_modules_directly_imported_by(m)) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in edges.get(module, ()):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(group)

    for module in modules:
        if module not in index:
            visit(module)
    return groups


def test_no_import_cycles() -> None:
    cycles = import_cycles()
    new = [sorted(c) for c in cycles if c not in KNOWN_CYCLES]
    assert not new, f"modules importing each other (function-level imports count): {new}"
    gone = [sorted(c) for c in KNOWN_CYCLES if c not in cycles]
    assert not gone, f"no longer a cycle: remove it from KNOWN_CYCLES: {gone}"
