#!/usr/bin/env bash
# A real DRP 0.5 server for tests/integration/test_fides_drp.py: Ethyca Fides 2.78.2 on 127.0.0.1:8181, with
# its private PostgreSQL (5433) and Redis (6380), brought up by shared/tools/fides/fides_local_up.sh.
#
#   .ci/fides.sh up      start it (about 2.5 min the first time: it installs Fides in its own venv; ~15 s
#                        after), or do nothing if one already answers; exit 0 once /health answers
#   .ci/fides.sh down    stop the Fides, Redis and PostgreSQL that the script started under $W, by their PIDs
#   .ci/fides.sh status  exit 0 if Fides answers
#
# The tools come from $FIDES_TOOLS, else ../shared/tools/fides beside the clone (CI: a read-only copy), else
# /work/shared/tools/fides. Everything is written under $W (default /tmp/interop). Needs root (apt-get,
# su postgres). Exit codes other than 0: 2 usage, 3 not root, 4 tools not found, 5 a stale part is running,
# 6 the script failed (its log's tail is printed).
set -euo pipefail
cd "$(dirname "$0")/.."
export W=${W:-/tmp/interop}
HEALTH=http://127.0.0.1:8181/health
PG_CTL=/usr/lib/postgresql/15/bin/pg_ctl

healthy() { curl -sf --max-time 5 "$HEALTH" >/dev/null 2>&1; }

tools_dir() {
  local d
  for d in "${FIDES_TOOLS:-}" ../shared/tools/fides /work/shared/tools/fides; do
    if [ -n "$d" ] && [ -f "$d/fides_local_up.sh" ]; then (cd "$d" && pwd); return 0; fi
  done
  return 1
}

# Stop the process whose PID is in file $1 if its command line contains $2 (never a recycled PID).
stop_pid() {
  local file=$1 name=$2 pid
  [ -f "$file" ] || return 0
  pid=$(cat "$file")
  if [ -n "$pid" ] && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q "$name"; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

up() {
  if healthy; then echo "fides: already answering on $HEALTH (reused)"; return 0; fi
  [ "$(id -u)" = 0 ] || { echo "fides: bringing Fides up needs root (apt-get, su postgres)" >&2; exit 3; }
  local tools; tools=$(tools_dir) || {
    echo "fides: shared/tools/fides/fides_local_up.sh not found (\$FIDES_TOOLS, ../shared, /work/shared)" >&2; exit 4; }
  # The script starts PostgreSQL and Redis unconditionally: a half-running earlier set would make it fail.
  if [ -f "$W/pg/data/postmaster.pid" ] && su postgres -c "$PG_CTL -D $W/pg/data status" >/dev/null 2>&1; then
    echo "fides: PostgreSQL from $W is still running without Fides; run '.ci/fides.sh down' first" >&2; exit 5
  fi
  mkdir -p "$W"
  local log="$W/fides-up.log" started=$SECONDS attempt
  for attempt in 1 2 3 4 5; do
    if bash "$tools/fides_local_up.sh" >"$log" 2>&1; then
      echo "fides: up in $((SECONDS - started)) s (log: $log)"; return 0
    fi
    # Another apt-get on the machine holds the dpkg lock: wait for it rather than fail.
    if grep -q "Could not get lock" "$log" && [ "$attempt" -lt 5 ]; then sleep 20; continue; fi
    break
  done
  echo "fides: $tools/fides_local_up.sh failed after $((SECONDS - started)) s; the end of $log:" >&2
  grep -v "^WARNING: Location" "$log" | tail -n 15 >&2
  exit 6
}

down() {
  stop_pid "$W/fides-uvicorn.pid" uvicorn
  stop_pid "$W/redis/redis.pid" redis-server
  if [ -f "$W/pg/data/postmaster.pid" ]; then
    su postgres -c "$PG_CTL -D $W/pg/data stop -m fast" >/dev/null 2>&1 || true
  fi
  echo "fides: stopped what ran under $W"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) healthy ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
