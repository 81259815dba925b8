"""``tracker-ci catalog``: the service catalog (upstream's wire shape), and its import from
Backstage ``catalog-info.yaml`` files so a team with Backstage does not type it twice."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from tracker_ci.commands.common import AppState, WireChoice, pass_state
from tracker_ci.output import emit_json, render_summary, render_table

if TYPE_CHECKING:
    from tracker_ci.client import TrackerClient
    from tracker_ci.models import Catalog

__all__ = ["catalog", "read_backstage"]

#: What an import sets when neither the stored entry nor ``--version`` gives a version
#: (Backstage has none; the catalog requires one).
UNVERSIONED = "unknown"


@click.group(
    epilog="""\b
Examples:
  tracker-ci catalog set api --owner team-a --version 1.4.2 --type project \\
      --depends-on db --link https://api.example.com
  tracker-ci catalog import catalog-info.yaml services/*/catalog-info.yaml
  tracker-ci catalog list
  tracker-ci catalog get api
  tracker-ci catalog set base-image --reference-version 2.1 --latest-version 2.3
  tracker-ci catalog compliance
  tracker-ci catalog delete api
"""
)
def catalog() -> None:
    """The service catalog: owners, links, dependencies and versions; import from Backstage."""


# ------------------------------------------------------------------------ output
def _print_entry(state: AppState, entry: Catalog) -> None:
    if state.json:
        emit_json(entry)
        return
    sla = entry.sla
    click.echo(
        render_summary(
            [
                ("name", entry.name),
                ("type", _named(entry.type)),
                ("owner", entry.owner),
                ("version", entry.version),
                ("lifecycle", entry.lifecycle),
                ("description", entry.description),
                ("link", entry.link),
                ("repository", entry.repository),
                ("language", _named(entry.languages)),
                ("platform", _named(entry.platform)),
                ("depends on", entry.dependencies_in),
                ("used by", entry.dependencies_out),
                ("sla", _named(sla.level) if sla else ""),
                ("channels", [c.url or c.name for c in entry.communication_channels]),
                ("dashboards", [d.url for d in entry.dashboard_links]),
                ("latest version", entry.latest_version),
                ("reference version", entry.reference_version),
                ("created", entry.created_at),
                ("updated", entry.updated_at),
            ]
        )
    )


def _named(member: Any) -> str:
    """An enum's name, or "" for its unspecified member."""
    return "" if member.value.endswith("_UNSPECIFIED") else member.value


# ------------------------------------------------------------------------- reads
@catalog.command("list")
@pass_state
def list_entries(state: AppState) -> None:
    """Every catalog entry, by name."""
    with state.client() as client:
        entries = client.list_catalogs()
    if state.json:
        emit_json(entries)
        return
    if not entries:
        click.echo("no catalog entries")
        return
    click.echo(
        render_table(
            [
                (e.name, _named(e.type), e.owner, e.version, e.dependencies_in, e.dependencies_out)
                for e in entries
            ],
            ["name", "type", "owner", "version", "depends on", "used by"],
        )
    )


@catalog.command("get")
@click.argument("name")
@pass_state
def get(state: AppState, name: str) -> None:
    """One service's entry. Exit 6 when it has none."""
    with state.client() as client:
        entry = client.get_catalog(name)
    _print_entry(state, entry)


@catalog.command("compliance")
@click.option(
    "--type",
    "types",
    multiple=True,
    type=WireChoice("CatalogType"),
    help="Deliverable types to check (repeatable). [default: package, chart, container, module]",
)
@pass_state
def compliance(state: AppState, types: tuple[Any, ...]) -> None:
    """Each project's deliverables against their reference versions."""
    with state.client() as client:
        report = client.catalog_compliance(types=types)
    if state.json:
        emit_json(report)
        return
    rows = [
        (
            project.project_name,
            used.name,
            used.current_version,
            used.reference_version,
            used.latest_version,
            "outdated" if used.is_outdated else "ok",
        )
        for project in report.projects
        for used in project.deliverables
    ]
    if not rows:
        click.echo("no project uses a deliverable of the catalog")
        return
    click.echo(
        render_table(rows, ["project", "deliverable", "used", "reference", "latest", "state"])
    )
    if report.summary is not None:
        summary = report.summary
        click.echo(
            f"{summary.compliant_projects} of {summary.total_projects} projects compliant "
            f"({summary.overall_compliance_percentage:g}%)"
        )


# ------------------------------------------------------------------------ writes
@catalog.command("set")
@click.argument("name")
@click.option("--owner", help="The team or person who owns it. (required for a new entry)")
@click.option("--version", "version", help="Its current version. (required for a new entry)")
@click.option("--type", "kind", type=WireChoice("CatalogType"), help="What it is.")
@click.option("--language", type=WireChoice("Language"), help="Its main language.")
@click.option("--platform", type=WireChoice("Platform"), help="Where it runs.")
@click.option("--lifecycle", help="experimental, production, deprecated...")
@click.option("--description", help="One line about it.")
@click.option("--link", help="Its home page (http(s) URL).")
@click.option("--repository", help="Its source repository (http(s) URL).")
@click.option(
    "--depends-on", "depends_on", multiple=True, help="A service it depends on (repeatable)."
)
@click.option(
    "--used-by", "used_by", multiple=True, help="A service that depends on it (repeatable)."
)
@click.option(
    "--environment",
    "environments",
    multiple=True,
    help="An environment it deploys to (repeatable; a listed name is never taken for a "
    "misspelling).",
)
@click.option(
    "--available-version", "available", multiple=True, help="A published version (repeatable)."
)
@click.option("--latest-version", help="Its newest version (a deliverable).")
@click.option("--reference-version", help="The version projects should use (a deliverable).")
@pass_state
def set_entry(state: AppState, name: str, **options: Any) -> None:
    """Create an entry, or change the options given of an existing one. Exit 2 when a new
    entry lacks --owner or --version or a link is not http(s)."""
    versions = {
        key: options.pop(key) for key in ("available", "latest_version", "reference_version")
    }
    with state.client() as client:
        entry = _merged(_stored_or_new(client, name), options)
        stored = client.put_catalog(entry)
        if versions["available"] or versions["latest_version"] or versions["reference_version"]:
            stored = client.set_catalog_versions(
                name,
                available=versions["available"] or stored.available_versions,
                latest=_given(versions["latest_version"], stored.latest_version),
                reference=_given(versions["reference_version"], stored.reference_version),
            )
    _print_entry(state, stored)


def _given(value: str | None, stored: str) -> str:
    return stored if value is None else value


#: ``set`` option -> Catalog field (repeatable options replace the list when given).
_SET_FIELDS = {
    "owner": "owner",
    "version": "version",
    "kind": "type",
    "language": "languages",
    "platform": "platform",
    "lifecycle": "lifecycle",
    "description": "description",
    "link": "link",
    "repository": "repository",
    "depends_on": "dependencies_in",
    "used_by": "dependencies_out",
    "environments": "environments",
}


def _merged(entry: Catalog, options: dict[str, Any]) -> Catalog:
    """``entry`` with the options that were given (None and () were not)."""
    changes = {
        _SET_FIELDS[key]: list(value) if isinstance(value, tuple) else value
        for key, value in options.items()
        if value is not None and value != ()
    }
    return entry.model_copy(update=changes)


def _stored_or_new(client: TrackerClient, name: str) -> Catalog:
    from tracker_ci.exceptions import NotFound
    from tracker_ci.models import Catalog

    try:
        return client.get_catalog(name)
    except NotFound:
        return Catalog(name=name)


@catalog.command("delete")
@click.argument("name")
@pass_state
def delete(state: AppState, name: str) -> None:
    """Delete a service's entry. Exit 6 when it has none."""
    with state.client() as client:
        client.delete_catalog(name)
    if state.json:
        emit_json({"deleted": True, "name": name})
    else:
        click.echo(f"deleted catalog entry {name}")


# ------------------------------------------------------------------------ import
@dataclass
class Component:
    """What a Backstage ``Component`` says about a service."""

    name: str
    owner: str
    source: str
    kind: str = "project"
    lifecycle: str = ""
    description: str = ""
    link: str = ""
    repository: str = ""
    depends_on: list[str] = field(default_factory=list)
    dashboards: list[tuple[str, str]] = field(default_factory=list)


def _ref_name(ref: Any) -> str:
    """``component:default/db`` -> ``db``: the entity's name without kind and namespace."""
    text = str(ref).strip()
    return text.split(":", 1)[-1].rsplit("/", 1)[-1]


def _is_component_ref(ref: Any) -> bool:
    text = str(ref).strip()
    return ":" not in text or text.lower().startswith("component:")


def _links(links: Any, where: str) -> tuple[str, list[tuple[str, str]]]:
    """The first non-dashboard link, and the dashboards (title, url)."""
    if links is None:
        return "", []
    if not isinstance(links, list):
        raise ValueError(f"{where}: metadata.links must be a list of {{url, title}}")
    home, dashboards = "", []
    for index, link in enumerate(links):
        if not isinstance(link, dict) or not isinstance(link.get("url"), str):
            raise ValueError(f"{where}: metadata.links[{index}] has no url")
        kind = f"{link.get('type', '')} {link.get('icon', '')}".lower()
        if "dashboard" in kind:
            dashboards.append((str(link.get("title") or link["url"]), link["url"]))
        elif not home:
            home = link["url"]
    return home, dashboards


def _repository(annotations: dict[str, Any]) -> str:
    slug = annotations.get("github.com/project-slug")
    if slug:
        return f"https://github.com/{slug}"
    location = str(annotations.get("backstage.io/source-location", ""))
    return location.removeprefix("url:") if location.startswith("url:") else ""


def _component(document: dict[str, Any], where: str) -> Component:
    metadata, spec = document.get("metadata"), document.get("spec")
    if not isinstance(metadata, dict) or not metadata.get("name"):
        raise ValueError(f"{where}: a Component needs metadata.name")
    if not isinstance(spec, dict) or not spec.get("owner"):
        raise ValueError(f"{where}: Component {metadata['name']} needs spec.owner")
    depends_on = spec.get("dependsOn") or []
    if not isinstance(depends_on, list):
        raise ValueError(f"{where}: spec.dependsOn must be a list of entity references")
    home, dashboards = _links(metadata.get("links"), where)
    annotations = metadata.get("annotations")
    return Component(
        name=str(metadata["name"]),
        owner=_ref_name(spec["owner"]),
        source=where,
        kind="library" if str(spec.get("type", "")).lower() == "library" else "project",
        lifecycle=str(spec.get("lifecycle") or ""),
        description=str(metadata.get("description") or "").strip(),
        link=home,
        repository=_repository(annotations if isinstance(annotations, dict) else {}),
        depends_on=[_ref_name(ref) for ref in depends_on if _is_component_ref(ref)],
        dashboards=dashboards,
    )


def read_backstage(path: Path) -> list[Component]:
    """The Components of one ``catalog-info.yaml`` (other kinds are skipped); ValueError
    with a one-line reason for a file that cannot be read as one."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read it ({exc.__class__.__name__}: {exc})") from None
    try:
        documents = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or exc.__class__.__name__
        raise ValueError(f"{path}: not valid YAML{line}: {problem}") from None
    found = []
    for number, document in enumerate(documents, start=1):
        if document is None:
            continue
        where = f"{path} (document {number})"
        if not isinstance(document, dict):
            raise ValueError(f"{where}: not a Backstage entity (a mapping with kind)")
        if str(document.get("kind", "")).lower() == "component":
            found.append(_component(document, where))
    return found


def _dashboard(title: str, url: str) -> Any:
    from tracker_ci.models import DashboardLink, DashboardType

    host = url.lower()
    kind = next(
        (t for t in DashboardType if t.value in host and not t.value.endswith("UNSPECIFIED")),
        DashboardType.custom,
    )
    return DashboardLink(type=kind, name=title, url=url)


def _imported(
    stored: Catalog | None, component: Component, used_by: Iterable[str], version: str | None
) -> Catalog:
    """The entry a Component makes: the stored one (if any) with what Backstage says."""
    from tracker_ci.models import Catalog, CatalogType

    base = stored or Catalog(name=component.name)
    keep_out = list(base.dependencies_out)
    changes: dict[str, Any] = {
        "owner": component.owner,
        "type": CatalogType.parse(component.kind),
        "version": version or base.version or UNVERSIONED,
        "lifecycle": component.lifecycle or base.lifecycle,
        "description": component.description or base.description,
        "link": component.link or base.link,
        "repository": component.repository or base.repository,
        "dependencies_in": component.depends_on,
        "dependencies_out": keep_out + [name for name in used_by if name not in keep_out],
    }
    if component.dashboards:
        changes["dashboard_links"] = [_dashboard(t, u) for t, u in component.dashboards]
    return base.model_copy(update=changes)


def _read_all(files: Sequence[Path]) -> list[Component]:
    from tracker_ci.exceptions import ConfigError

    components: list[Component] = []
    for path in files:
        try:
            components += read_backstage(path)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    seen: dict[str, str] = {}
    for component in components:
        if component.name in seen:
            raise ConfigError(
                f"{component.source}: Component {component.name} is also in {seen[component.name]}"
            )
        seen[component.name] = component.source
    return components


@catalog.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--version",
    "version",
    help=f"The version of every imported entry. [default: the stored one, else {UNVERSIONED}]",
)
@click.option("--dry-run", is_flag=True, help="Show the entries; store nothing.")
@pass_state
def import_entries(
    state: AppState, files: tuple[Path, ...], version: str | None, dry_run: bool
) -> None:
    """Create or update entries from Backstage catalog-info.yaml files (Component kind:
    metadata.name, spec.owner, spec.lifecycle, metadata.links, spec.dependsOn; several
    documents per file). Every file is read before anything is stored; a bad one is an
    error naming it (exit 2)."""
    from tracker_ci.exceptions import NotFound

    components = _read_all(files)
    used_by: dict[str, list[str]] = {}
    for component in components:
        for target in component.depends_on:
            used_by.setdefault(target, []).append(component.name)
    done: list[tuple[Catalog, bool]] = []
    with state.client() as client:
        for component in components:
            try:
                stored: Catalog | None = client.get_catalog(component.name)
            except NotFound:
                stored = None
            entry = _imported(stored, component, used_by.get(component.name, ()), version)
            done.append((entry if dry_run else client.put_catalog(entry), stored is None))
    _report_import(state, done, dry_run)


def _report_import(state: AppState, done: list[tuple[Catalog, bool]], dry_run: bool) -> None:
    if state.json:
        emit_json([entry for entry, _ in done])
        return
    if not done:
        click.echo("no Component in these files")
        return
    verb = "would import" if dry_run else "imported"
    for entry, new in done:
        click.echo(
            f"{verb} {entry.name} ({'new' if new else 'updated'}): owner {entry.owner}, "
            f"depends on {', '.join(entry.dependencies_in) or 'nothing'}"
        )
