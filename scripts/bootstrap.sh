#!/usr/bin/env bash
# Installs everything the project's commands need, idempotently:
# a virtualenv in .venv with the package and its dev tools, gitlab-ci-local under
# .tools/, and the Debian packages the validators call (rsync, shellcheck).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv" >&2
  "$PYTHON" -m venv .venv
fi

stamp=.venv/.tracker-ci-installed
want=$(cat pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "bootstrap: installing tracker-ci and its dev tools into .venv" >&2
  # pip's build chatter goes to a log, shown only when the install fails.
  if ! { .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip &&
         .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[all,dev]'; } \
       >.venv/pip-install.log 2>&1; then
    cat .venv/pip-install.log >&2
    echo "bootstrap: pip install failed (log above, also in .venv/pip-install.log)" >&2
    exit 1
  fi
  echo "$want" > "$stamp"
fi

if [ "${1:-}" = "--with-test-tools" ]; then
  missing=()
  command -v rsync >/dev/null || missing+=(rsync)
  command -v shellcheck >/dev/null || missing+=(shellcheck)
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
  # The PostgreSQL tests need the local server; start it if it is installed but down.
  if command -v pg_isready >/dev/null && ! pg_isready -q -h 127.0.0.1 -p 5432; then
    if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
      pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    fi
  fi
fi
