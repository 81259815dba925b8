#!/usr/bin/env bash
# The quick-start demo: the bundled server on SQLite plus tracked demo deploys.
# Two deploys of one service start together: the second waits for the first's lock.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .demo
export PATH="$PWD/.venv/bin:$PATH"

port=${TRACKER_DEMO_PORT:-$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
export TRACKER_URL="http://127.0.0.1:$port"
unset TRACKER_TOKEN

echo "==> starting the bundled Tracker server on $TRACKER_URL (SQLite: .demo/tracker.db, log: .demo/server.log)"
tracker-ci server --host 127.0.0.1 --port "$port" --database-url "sqlite:///$PWD/.demo/tracker.db" \
  >.demo/server.log 2>&1 &
server_pid=$!
trap 'kill -TERM $server_pid 2>/dev/null; wait $server_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  if python -c "import httpx,sys; sys.exit(httpx.get('$TRACKER_URL/health').status_code != 200)" 2>/dev/null; then
    break
  fi
  if ! kill -0 $server_pid 2>/dev/null; then cat .demo/server.log; exit 1; fi
  sleep 0.2
done

echo "==> deploy #1 of demo-api to development (holds the lock for 3 s)"
tracker-ci deploy run --service demo-api --environment development --owner alice \
  --title "Deploy demo-api v1.0.0" --pr-url https://github.com/example/demo-api/pull/42 \
  -- bash -c 'echo "  [deploy #1] rolling out v1.0.0"; sleep 3; echo "  [deploy #1] done"' &
first=$!
sleep 1
echo "==> deploy #2 of demo-api to development starts meanwhile and waits for the lock"
tracker-ci deploy run --service demo-api --environment development --owner bob \
  --title "Deploy demo-api v1.0.1" --wait 60 \
  -- bash -c 'echo "  [deploy #2] rolling out v1.0.1"; sleep 1; echo "  [deploy #2] done"'
wait $first

echo "==> a deploy whose script fails is closed as failure, and its lock is released"
set +e
tracker-ci deploy run --service demo-api --environment production --owner carol \
  -- bash -c 'echo "  [deploy #3] migration failed" >&2; exit 7'
echo "  exit code: $? (the deploy command's own)"
set -e

echo "==> the deployment events"
tracker-ci event search --service demo-api
echo "==> locks now held (none: every deploy released its lock)"
tracker-ci lock list
echo "==> the dashboard: $TRACKER_URL/ (board, timeline, locks, freezes, insights)"
if python -c "import httpx,sys; sys.exit(httpx.get('$TRACKER_URL/').status_code != 200)"; then
  echo "    it shows the deploys above: every service x environment, locks, DORA insights"
fi
if [ -t 0 ] && [ -t 1 ]; then
  read -r -p "    open it in a browser; press Enter to stop the server " _ || true
else
  echo "    serve it again: tracker-ci server --database-url sqlite:///$PWD/.demo/tracker.db --port $port"
fi
echo "==> demo finished; the data stays in .demo/tracker.db"
