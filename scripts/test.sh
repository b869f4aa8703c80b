#!/usr/bin/env bash
# Every test, in the order that keeps CI inside its time (`make test` runs this after `setup`
# and `host`):
#   1. the OpenStack test cloud starts coming up in the background, niced (its services and
#      qemu guests inherit it: beside the main tests they get the CPU those leave; not niced,
#      its two emulated guests took most of both cores and the main tests slowed to a
#      crawl); on a cold machine its image build and services take about 20 minutes, warm 7,
#      the OpenStack plugin is built beside it, niced too (`make provider`, about 7 minutes
#      cold): only the cloud tests need it,
#   2. meanwhile the sandbox images, the engine and lint run side by side (`make -j3 images
#      engine lint`), then every other test starts (the main pytest, `-m "not cloud"`;
#      tests/conftest.py leaves tests/testcloud out unless MIGRATE_TESTCLOUD_TESTS=1),
#   3. as soon as the cloud and the plugin are ready, the cloud tests (`-m cloud`: the test
#      cloud's own, tests/testcloud, and those that need the built plugin) start in a second
#      pytest, beside the main one; their sandboxes use networks, system ids and a platform
#      machine name no other test uses.
# Each pytest's lines are prefixed ([main], [cloud]) and kept in a log file of its own;
# both durations and exit statuses are printed at the end, and the script fails if either
# fails. A cloud this script brought up is removed again at the end (its cached images stay).
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

logs=$(mktemp -d -t migrate-test.XXXXXX)
log="$logs/testcloud-up.log"
cloud_was_running=0
if "$PY" -m migrate.rehearsal.testcloud status 2>/dev/null | grep -q '"machine": "running"'; then
  cloud_was_running=1
fi
started=$(date +%s)
nice -n 10 "$PY" -m migrate.rehearsal.testcloud up >"$log" 2>&1 &
cloud_pid=$!
nice -n 10 make provider >"$logs/provider.log" 2>&1 &
provider_pid=$!
main_pid=""
tc_pid=""
# the pytest processes are children of the background parts (pipelines)
trap 'kill "$cloud_pid" "$provider_pid" 2>/dev/null; for p in $main_pid $tc_pid; do pkill -P "$p"; done' INT TERM

# part NAME LOG COMMAND...: runs COMMAND with every output line prefixed "[NAME] " and kept,
# unprefixed, in LOG; its exit status is COMMAND's (pipefail); the time it ended in LOG.end
# (the script waits for the parts one after the other).
part() {
  local name=$1 file=$2 status
  shift 2
  "$@" 2>&1 | tee "$file" | sed -u "s/^/[$name] /"
  status=$?
  date +%s > "$file.end"
  return "$status"
}

main_status=1
main_started=""
if make -j3 --output-sync=target images engine lint; then
  main_started=$(date +%s)
  echo "== [main] pytest -m 'not cloud'${*:+ $*} started; log $logs/main.log"
  part main "$logs/main.log" "$PY" -m pytest -m "not cloud" "$@" &
  main_pid=$!
fi

wait "$cloud_pid"
cloud_status=$?
cloud_ready=$(date +%s)
echo "== test cloud: up finished $(( cloud_ready - started )) s after the start (in the" \
     "background; exit $cloud_status; its own timings: $log)"

wait "$provider_pid"
provider_status=$?
provider_ready=$(date +%s)
echo "== provider: built $(( provider_ready - started )) s after the start (exit" \
     "$provider_status; $logs/provider.log)"

tc_status=1
tc_started=""
if [ "$cloud_status" -ne 0 ]; then
  tail -n 40 "$log" >&2
elif [ "$provider_status" -ne 0 ]; then
  tail -n 40 "$logs/provider.log" >&2
elif [ -n "$main_started" ]; then
  tc_started=$(date +%s)
  echo "== [cloud] pytest -m cloud (tests/testcloud and the plugin's tests) started beside" \
       "the main tests; log $logs/cloud.log"
  MIGRATE_TESTCLOUD_TESTS=1 part cloud "$logs/cloud.log" \
    "$PY" -m pytest -p no:cacheprovider -m cloud &
  tc_pid=$!
fi

if [ -n "$main_pid" ]; then
  wait "$main_pid"
  main_status=$?
  main_ended=$(cat "$logs/main.log.end" 2>/dev/null || date +%s)
fi
if [ -n "$tc_pid" ]; then
  wait "$tc_pid"
  tc_status=$?
  tc_ended=$(cat "$logs/cloud.log.end" 2>/dev/null || date +%s)
fi

if [ "$cloud_was_running" -eq 0 ] && [ "${MIGRATE_TESTCLOUD_KEEP:-0}" != "1" ]; then
  "$PY" -m migrate.rehearsal.testcloud down >/dev/null || echo "test.sh: removing the test cloud failed" >&2
fi

echo "== summary (logs in $logs)"
if [ -n "$main_started" ]; then
  echo "== [main] every test but the cloud tests: exit $main_status," \
       "$(( main_ended - main_started )) s"
else
  echo "== [main] not run: 'make images engine lint' failed"
fi
echo "== test cloud: up exit $cloud_status, finished $(( cloud_ready - started )) s after the start"
echo "== provider: exit $provider_status, built $(( provider_ready - started )) s after the start"
if [ -n "$tc_started" ]; then
  echo "== [cloud] the cloud tests: exit $tc_status, $(( tc_ended - tc_started )) s," \
       "started $(( tc_started - ${main_started:-$tc_started} )) s after the main tests"
else
  echo "== [cloud] the cloud tests: not run (the build, the plugin or the test cloud failed)"
fi
[ "$main_status" -eq 0 ] && [ "$tc_status" -eq 0 ]
