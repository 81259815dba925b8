#!/usr/bin/env bash
# Installs what the project's commands need, idempotently: a virtualenv in .venv with the
# package and the server (`make demo`), or with every extra and the dev tools, gitlab-ci-local
# under .tools/ and the Debian packages the validators call (`--with-test-tools`, `make test`).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv" >&2
  "$PYTHON" -m venv .venv
fi

# `make demo` needs only the package and the server; `make test` (--with-test-tools) needs
# every extra and the dev tools. The stamp says which set is installed, for which pyproject.
extras=server
[ "${1:-}" = "--with-test-tools" ] && extras=all,dev
stamp=.venv/.tracker-ci-installed
hash=$(sha256sum pyproject.toml | cut -d' ' -f1)
installed=$(cat "$stamp" 2>/dev/null || true)
if [ "$installed" != "$hash all,dev" ] && [ "$installed" != "$hash $extras" ]; then
  echo "bootstrap: installing tracker-ci[$extras] into .venv" \
    "(about $([ "$extras" = server ] && echo 30 || echo 90) s here; one line per package)" >&2
  # The whole log goes to a file, shown when the install fails; a line per package is shown.
  if ! .venv/bin/python -m pip install --disable-pip-version-check --progress-bar off \
         --upgrade pip -e ".[$extras]" 2>&1 \
       | tee .venv/pip-install.log \
       | { grep --line-buffered -E '^(Collecting|Installing collected)' || true; } \
       | sed -u 's/^/  /' >&2; then
    cat .venv/pip-install.log >&2
    echo "bootstrap: pip install failed (log above, also in .venv/pip-install.log)" >&2
    exit 1
  fi
  echo "$hash $extras" >"$stamp"
  echo "bootstrap: tracker-ci[$extras] installed" >&2
fi

if [ "${1:-}" = "--with-test-tools" ]; then
  missing=()
  command -v rsync >/dev/null || missing+=(rsync)
  command -v shellcheck >/dev/null || missing+=(shellcheck)
  # The page tests drive Debian's Chromium through Playwright (never `playwright install`).
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  # The PgBouncer tests (tests/server/test_pgbouncer.py) run Debian's pgbouncer.
  [ -x /usr/sbin/pgbouncer ] || command -v pgbouncer >/dev/null || missing+=(pgbouncer)
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "bootstrap: apt-get install ${missing[*]}" >&2
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") >/dev/null \
        || echo "bootstrap: could not install ${missing[*]}; the tests that need them will say so" >&2
    else
      echo "bootstrap: please install ${missing[*]} (tests that need them will say so)" >&2
    fi
  fi
  if [ ! -x .tools/node_modules/.bin/gitlab-ci-local ] && command -v npm >/dev/null; then
    echo "bootstrap: installing gitlab-ci-local 4.73.0 under .tools/" >&2
    mkdir -p .tools
    (cd .tools && npm install --silent --no-audit --no-fund --prefix . gitlab-ci-local@4.73.0 >/dev/null) \
      || echo "bootstrap: could not install gitlab-ci-local; the GitLab pipeline tests will say so" >&2
  fi
  if [ ! -f .tools/node_modules/axe-core/axe.min.js ] && command -v npm >/dev/null; then
    echo "bootstrap: installing axe-core 4 under .tools/ (the pages' accessibility checks)" >&2
    mkdir -p .tools
    (cd .tools && npm install --silent --no-audit --no-fund --prefix . axe-core@4 >/dev/null) \
      || echo "bootstrap: could not install axe-core; the accessibility tests will say so" >&2
  fi
  # The PostgreSQL tests need the local server; start it if it is installed but down.
  if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then
    if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
      pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    fi
  fi
fi
