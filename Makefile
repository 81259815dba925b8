# The same targets for people and CI. `make demo` and `make test` are the README's quick start.
.PHONY: bootstrap demo test test-fast lint lint-only bench screenshots clean

bootstrap:
	bash scripts/bootstrap.sh

demo: bootstrap
	bash scripts/demo.sh

# The whole suite, as CI runs it (installs what it needs first), after the linters.
test:
	bash scripts/bootstrap.sh --with-test-tools
	$(MAKE) --no-print-directory lint-only
	.venv/bin/python -m pytest

test-fast: bootstrap
	.venv/bin/python -m pytest -m "unit"

lint: bootstrap lint-only

lint-only:
	.venv/bin/ruff check tracker_ci server tests bench
	.venv/bin/ruff format --check tracker_ci server tests bench
	.venv/bin/mypy

bench: bootstrap
	.venv/bin/python bench/server_bench.py
	.venv/bin/python bench/cli_bench.py

# PNGs of every page from a seeded demo (Debian's chromium), into docs/screenshots/.
screenshots:
	bash scripts/bootstrap.sh --with-test-tools
	.venv/bin/python scripts/screenshots.py

clean:
	rm -rf .venv .tools .pytest_cache *.egg-info
