#!/usr/bin/env bash
# Every test, in the order that keeps CI inside its time (`make test` runs this after `setup`
# and `host`):
#   1. the OpenStack test cloud starts coming up in the background (niced; on a cold machine
#      its image build and services take about 20 minutes, warm about 10 seconds),
#   2. meanwhile the rest is built (sandbox images, engine, provider: `make images engine
#      provider lint`) and every other test runs (the test cloud's folder excluded),
#   3. then the test cloud's own tests run against it (tests/testcloud).
# A cloud this script brought up is removed again at the end (its cached images stay).
# MIGRATE_TESTCLOUD=0 leaves the test cloud out (developers without the time for it); under CI
# that is refused, like every other skip.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python

if [ "${MIGRATE_TESTCLOUD:-1}" = "0" ]; then
  if [ "${CI:-}" = "true" ]; then
    echo "test.sh: MIGRATE_TESTCLOUD=0 is refused under CI (the test cloud's tests would be skipped)" >&2
    exit 1
  fi
  make images engine provider lint || exit 1
  exec "$PY" -m pytest "$@"
fi

log=$(mktemp -t migrate-testcloud-up.XXXXXX.log)
cloud_was_running=0
if "$PY" -m migrate.rehearsal.testcloud status 2>/dev/null | grep -q '"machine": "running"'; then
  cloud_was_running=1
fi
started=$(date +%s)
nice -n 10 "$PY" -m migrate.rehearsal.testcloud up >"$log" 2>&1 &
cloud_pid=$!
trap 'kill "$cloud_pid" 2>/dev/null' INT TERM

main_status=1
if make images engine provider lint; then
  "$PY" -m pytest "$@"
  main_status=$?
fi

wait "$cloud_pid"
cloud_status=$?
echo "== test cloud: ready $(( $(date +%s) - started )) s after the start (it came up in the" \
     "background while the other tests ran; exit $cloud_status; its own timings: $log)"
if [ "$cloud_status" -ne 0 ]; then
  tail -n 40 "$log" >&2
  exit 1
fi

MIGRATE_TESTCLOUD_TESTS=1 "$PY" -m pytest tests/testcloud
cloud_tests_status=$?

if [ "$cloud_was_running" -eq 0 ] && [ "${MIGRATE_TESTCLOUD_KEEP:-0}" != "1" ]; then
  "$PY" -m migrate.rehearsal.testcloud down >/dev/null || echo "test.sh: removing the test cloud failed" >&2
fi
[ "$main_status" -eq 0 ] && [ "$cloud_tests_status" -eq 0 ]
