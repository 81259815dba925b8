# The same targets for people and CI. `make demo` and `make test` are the README's quick start.
.PHONY: bootstrap demo test test-fast lint lint-only bench bench-quick quickstart-times screenshots clean

bootstrap:
	bash scripts/bootstrap.sh

demo: bootstrap
	bash scripts/demo.sh

# The whole suite, as CI runs it (installs what it needs first), after the linters: a
# worker per core (pytest-xdist), each test file whole on one worker so that its module's
# servers start once; every worker has its own session servers and PostgreSQL database.
# PYTEST_PARALLEL= (empty) runs it in one process.
PYTEST_PARALLEL ?= -n auto --dist loadfile
test:
	bash scripts/bootstrap.sh --with-test-tools
	$(MAKE) --no-print-directory lint-only
	.venv/bin/python -m pytest $(PYTEST_PARALLEL)

test-fast: bootstrap
	.venv/bin/python -m pytest -m "unit"

lint: bootstrap lint-only

lint-only:
	.venv/bin/ruff check tracker_ci server tests bench
	.venv/bin/ruff format --check tracker_ci server tests bench
	.venv/bin/mypy
	.venv/bin/lint-imports

# The benchmark: 1,000,000 events, SQLite and PostgreSQL side by side, the CLI; a table
# of figures against same-run baselines, written to bench/results.json (under 10 min),
# then published into README.md and docs/performance.md (bench/publish.py).
bench: bootstrap
	.venv/bin/python bench/run.py --json bench/results.json
	.venv/bin/python bench/publish.py

# The quick start timed from fresh clones (make demo, cold and warm; QUICKSTART_ARGS=--test
# adds make test), recorded in bench/quickstart.json and published into README.md.
quickstart-times: bootstrap
	.venv/bin/python bench/quickstart.py $(QUICKSTART_ARGS)
	.venv/bin/python bench/publish.py

# The same at 100,000 events with shorter windows (about a minute once the fill is cached),
# to check a change; it leaves bench/results.json alone.
bench-quick: bootstrap
	.venv/bin/python bench/run.py --quick --json .bench/results-quick.json

# PNGs of every page from a seeded demo (Debian's chromium), into docs/screenshots/.
screenshots:
	bash scripts/bootstrap.sh --with-test-tools
	.venv/bin/python scripts/screenshots.py

clean:
	rm -rf .venv .tools .pytest_cache *.egg-info
