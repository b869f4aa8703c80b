#!/bin/bash
# move.sh: the shell side of moving one host's data and services, run on that host by the
# plays (ansible.builtin.script). Few round trips on purpose: the cutover steps run while
# nothing serves. One mode per step, so a play can put a barrier between steps (every source
# frozen before any final sync; every sync done before any target starts).
#
#   move.sh sums DB                  per-table "schema.table rows checksum" of DB here
#   move.sh copy DB TARGET           pg_dump -Fc into pg_restore --create on TARGET unless both
#                                    sides hold the same rows (remembers the writes it saw)
#   move.sh publish DB TARGET VERIFIER   make DB replicable to TARGET (wal_level=logical, role
#                                    migrate_replicator with the SCRAM VERIFIER, publication,
#                                    pg_hba line); falls back to "copy" when a table has no key
#   move.sh subscribe DB TARGET SOURCE_ADDRESS   (password on stdin) TARGET subscribes to DB
#                                    on SOURCE_ADDRESS and copies it; returns once every table
#                                    is in step; "copy" when DB is not published
#   move.sh unsubscribe "DB..." TARGET  after the cutover: end the subscriptions
#   move.sh unpublish DB TARGET      remove the publication, slot, marker schema, pg_hba line
#   move.sh freeze RECORD UNIT...    record how the units run (once: rollback restores exactly
#                                    that), then stop them
#   move.sh persist enable|disable UNIT...  whether the units start at boot (after the start)
#   move.sh final TARGET             final rsync of each tree of $TREES (one per line) and
#                                    catch-up of each database of $DATABASES ("name:method"
#                                    separated by spaces), to TARGET
#   move.sh start UNIT:PORT:PATH...  start the units, wait for each health path
#   move.sh preview TARGET UNIT...   what freeze and final would do (check mode)
#
# $MIGRATE_SSH is the ssh command to the target (migration key, host key checked).
# Prints "changed" when it changed something.
set -euo pipefail
as_postgres() { runuser -u postgres -- "$@"; }
remote() { $MIGRATE_SSH "root@$target" "$@"; }
rsync_tree() {  # rsync_tree TREE [extra rsync options]
    local tree="${1%/}"
    shift
    rsync --archive --hard-links --partial --delete --mkpath --checksum-choice=xxh128 \
        --rsh="$MIGRATE_SSH" --out-format='%i %n%L' "$@" "$tree/" "root@$target:$tree/"
}

freeze() {
    local record="$1" changed=""
    shift
    [ "$#" -gt 0 ] || return 0
    if [ ! -e "$record" ]; then
        mkdir -p -m 0700 "$(dirname "$record")"
        local unit lines json="{"
        for unit in "$@"; do
            lines="$(systemctl show --property=UnitFileState --property=ActiveState "$unit" \
                     | LC_ALL=C sort | sed 's/.*/"&"/' | paste -sd, -)"
            json+="$([ "$json" = "{" ] || echo ,)\"$unit\": [$lines]"
        done
        printf '%s}\n' "$json" > "$record.tmp"
        chmod 0600 "$record.tmp"
        mv "$record.tmp" "$record"
    fi
    for unit in "$@"; do
        if systemctl is-active --quiet "$unit"; then changed=changed; fi
    done
    systemctl stop "$@"  # disabling (a daemon reload) waits until the targets serve: persist
    [ -z "$changed" ] || echo changed
}

persist() {  # persist enable|disable UNIT...: whether the units start at boot
    local want="$1" unit changed=""
    shift
    for unit in "$@"; do
        if systemctl is-enabled --quiet "$unit"; then
            [ "$want" = enable ] || changed=changed
        else
            [ "$want" = disable ] || changed=changed
        fi
    done
    [ -z "$changed" ] || systemctl "$want" --quiet "$@"
    [ -z "$changed" ] || echo changed
}

# The writes a database has seen (table counters, and when they were last reset): taken
# before a copy and compared at the final sync, so an unchanged database is not copied again
# while nothing serves. A wrong "unchanged" cannot pass unseen: the cutover compares every
# table's rows and checksums of both sides afterwards and rolls back when they differ.
writes_of() {
    as_postgres psql -XAt -v ON_ERROR_STOP=1 -d "$1" -c "
        SELECT (SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) || '/' || count(*)
                FROM pg_stat_user_tables)
               || '/' || coalesce((SELECT stats_reset::text FROM pg_stat_database
                                   WHERE datname = current_database()), '-')"
}

final() {
    local tree spec db writes synced changed=""
    while IFS= read -r tree; do
        [ -n "$tree" ] || continue
        synced="$(rsync_tree "$tree")"
        [ -z "$synced" ] || changed=changed
    done <<< "${TREES:-}"
    for spec in ${DATABASES:-}; do
        db="${spec%%:*}"
        if [ "${spec#*:}" = logical_replication ] && subscribed_here "$db"; then
            catch_up "$db"
            changed=changed
            continue
        fi
        unwritten_since_copy "$db" && continue
        writes="$(writes_of "$db")"
        dump_restore "$db"
        remember_writes "$db" "$writes"
        changed=changed
    done
    [ -z "$changed" ] || echo changed
}

start() {
    local spec units=() changed=""
    for spec in "$@"; do units+=("${spec%%:*}"); done
    [ "${#units[@]}" -gt 0 ] || return 0
    for spec in "${units[@]}"; do
        if ! systemctl is-active --quiet "$spec"; then changed=changed; fi
    done
    systemctl start "${units[@]}"  # enabling waits until they serve: persist
    python3 - "$@" <<'PY'
import sys, time, urllib.request
deadline = time.monotonic() + 120
for spec in sys.argv[1:]:
    unit, port, path = spec.split(":", 2)
    url = f"http://127.0.0.1:{port}{path}"
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            sys.exit(f"{unit} did not answer {url} with 200 within 120 s")
        time.sleep(0.05)
PY
    [ -z "$changed" ] || echo changed
}

preview() {
    local tree spec db unit
    shift
    for unit in "$@"; do
        echo "would stop and disable $unit ($(systemctl is-active "$unit" || true)," \
             "$(systemctl is-enabled "$unit" || true))"
    done
    while IFS= read -r tree; do
        [ -n "$tree" ] || continue
        rsync_tree "$tree" --dry-run | sed "s|^|would sync $tree: |"
    done <<< "${TREES:-}"
    for spec in ${DATABASES:-}; do
        db="${spec%%:*}"
        if [ "${spec#*:}" = logical_replication ] && subscribed_here "$db"; then
            echo "database $db: would wait for the target to apply the last writes, then end the subscription"
        elif unwritten_since_copy "$db"; then
            echo "database $db: no writes since the last copy"
        else
            echo "would copy database $db again (written since the last copy)"
        fi
    done
}

db_sums() {  # nothing at all when the database does not exist (yet)
    [ "$(as_postgres psql -XAt -d postgres -v db="$1" <<< "SELECT count(*) FROM pg_database WHERE datname = :'db'")" = 1 ] || return 0
    as_postgres psql -XAt -v ON_ERROR_STOP=1 -d "$1" -c "
        SELECT format('SELECT %L, count(*), coalesce(sum((''x'' || substr(md5(t::text), 1, 16))::bit(64)::bigint), 0)::text FROM %I.%I AS t;',
                      schemaname || '.' || tablename, schemaname, tablename)
        FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema', 'migrate')
        ORDER BY schemaname, tablename" \
    | as_postgres psql -XAt -F ' ' -v ON_ERROR_STOP=1 -d "$1"
}

remember_writes() { mkdir -p -m 0700 /var/lib/migrate; printf '%s\n' "$2" > "/var/lib/migrate/writes-$1"; }
unwritten_since_copy() { [ -e "/var/lib/migrate/writes-$1" ] && [ "$(cat "/var/lib/migrate/writes-$1")" = "$(writes_of "$1")" ]; }

dump_restore() {
    remote "runuser -u postgres -- dropdb --if-exists --force $(printf %q "$1")"
    as_postgres pg_dump -Fc -d "$1" \
        | remote "runuser -u postgres -- pg_restore --create --exit-on-error -d postgres"
}

copy() {
    local db="$1" here there writes
    writes="$(writes_of "$db")"
    here="$(db_sums "$db")"
    there="$(remote "bash -s -- sums $(printf %q "$db")" < "$0" || true)"
    if [ -n "$here" ] && [ "$here" = "$there" ]; then
        remember_writes "$db" "$writes"
        echo unchanged
        return 0
    fi
    dump_restore "$db"
    there="$(remote "bash -s -- sums $(printf %q "$db")" < "$0")"
    if [ "$here" != "$there" ]; then
        echo "database $db differs on $target after the copy" >&2
        exit 1
    fi
    remember_writes "$db" "$writes"
    echo changed
}

# ---- logical replication: the target subscribes to the source while it serves; at the
# cutover a marker row written after the freeze tells when the target has applied everything.
REPLICATOR=migrate_replicator
on_source_db() { as_postgres psql -XAt -v ON_ERROR_STOP=1 -d "$@"; }
on_target_db() { remote "runuser -u postgres -- psql -XAt -v ON_ERROR_STOP=1 -d $(printf %q "$1")"; }

# Where this source host remembers that a target subscribed to a database (so the cutover
# needs no round trip to find out).
SUBSCRIBED=/var/lib/migrate/subscribed
subscribed_here() { [ -e "$SUBSCRIBED-$1" ]; }

published() { [ "$(on_source_db "$1" -c "SELECT count(*) FROM pg_publication WHERE pubname = 'migrate_$1'")" = 1 ]; }
subscribed() { [ "$(echo "SELECT count(*) FROM pg_subscription WHERE subname = 'migrate_$1'" | on_target_db postgres)" = 1 ]; }

keyless_tables() {
    on_source_db "$1" -c "
        SELECT string_agg(format('%I.%I', n.nspname, c.relname), ', ')
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'migrate')
          AND c.relreplident = 'd' AND NOT EXISTS (
              SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)"
}

publish() {
    local db="$1" verifier="$3" changed="" keyless role hba line
    keyless="$(keyless_tables "$db")"
    if [ -n "$keyless" ]; then
        echo "final dump instead of logical replication: no primary key on $keyless"
        return 0
    fi
    if [ "$(on_source_db postgres -c 'SHOW wal_level')" != logical ]; then
        on_source_db postgres -c "ALTER SYSTEM SET wal_level = logical" > /dev/null
        systemctl restart postgresql.service
        until on_source_db postgres -c "SELECT 1" > /dev/null 2>&1; do sleep 0.2; done
        echo "restarted PostgreSQL for wal_level = logical"
        changed=changed
    fi
    role="$(on_source_db postgres -v v="$verifier" <<'SQL'
SELECT CASE WHEN r.rolname IS NULL THEN 'missing'
            WHEN r.rolpassword IS DISTINCT FROM :'v' OR NOT r.rolreplication THEN 'differs'
            ELSE 'same' END
FROM (SELECT 1) AS one LEFT JOIN pg_authid r ON r.rolname = 'migrate_replicator';
SQL
)"
    if [ "$role" != same ]; then
        on_source_db postgres -v v="$verifier" -v verb="$([ "$role" = missing ] && echo CREATE || echo ALTER)" \
            > /dev/null <<'SQL'
:verb ROLE migrate_replicator WITH LOGIN REPLICATION PASSWORD :'v';
SQL
        changed=changed
    fi
    if [ "$(on_source_db "$db" -c "SELECT count(*) FROM pg_tables WHERE schemaname = 'migrate' AND tablename = 'cutover_marker'")" = 0 ]; then
        on_source_db "$db" -c "CREATE SCHEMA IF NOT EXISTS migrate;
            CREATE TABLE migrate.cutover_marker (token text PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())" > /dev/null
        changed=changed
    fi
    # Reading rights as a role membership, not per-table grants: dumps stay free of them.
    on_source_db postgres -c "GRANT pg_read_all_data TO $REPLICATOR" > /dev/null 2>&1
    if ! published "$db"; then
        on_source_db "$db" -c "CREATE PUBLICATION migrate_$db FOR ALL TABLES" > /dev/null
        changed=changed
    fi
    hba="$(on_source_db postgres -c 'SHOW hba_file')"
    line="host    $db  $REPLICATOR  $target/32  scram-sha-256"
    if ! grep -qxF "$line" "$hba"; then
        printf '%s\n' "$line" >> "$hba"
        on_source_db postgres -c "SELECT pg_reload_conf()" > /dev/null
        changed=changed
    fi
    [ -z "$changed" ] || echo changed
}

subscribe() {
    local db="$1" source_address="$3" password
    IFS= read -r password
    if ! published "$db"; then
        copy "$db"
        return 0
    fi
    if subscribed "$db"; then
        wait_in_step "$db"
        mkdir -p -m 0700 /var/lib/migrate && touch "$SUBSCRIBED-$db"
        echo unchanged
        return 0
    fi
    remote "runuser -u postgres -- dropdb --if-exists --force $(printf %q "$db")"
    as_postgres pg_dump --schema-only --create --no-publications --no-subscriptions -d "$db" \
        | remote "runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -d postgres" > /dev/null
    printf "CREATE SUBSCRIPTION migrate_%s CONNECTION 'host=%s port=5432 dbname=%s user=%s password=%s' PUBLICATION migrate_%s;\n" \
        "$db" "$source_address" "$db" "$REPLICATOR" "$password" "$db" | on_target_db "$db" > /dev/null
    wait_in_step "$db"
    mkdir -p -m 0700 /var/lib/migrate && touch "$SUBSCRIBED-$db"
    echo changed
}

wait_in_step() {  # every table of the subscription copied and streaming
    remote "bash -s" <<EOF_REMOTE
deadline=\$(( \$(date +%s) + ${MIGRATE_SYNC_TIMEOUT_S:-14400} ))
until [ "\$(runuser -u postgres -- psql -XAt -d $(printf %q "$1") -c "SELECT count(*) FROM pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid WHERE s.subname = 'migrate_$1' AND r.srsubstate <> 'r'")" = 0 ]; do
    if [ "\$(date +%s)" -gt "\$deadline" ]; then echo "database $1 on the target is not in step after ${MIGRATE_SYNC_TIMEOUT_S:-14400} s" >&2; exit 1; fi
    sleep 0.2
done
EOF_REMOTE
}

catch_up() {  # the source is frozen: wait until the marker arrives, then copy the sequences
    local db="$1" token sequences
    token="cutover-$(date +%s%N)"
    on_source_db "$db" -c "INSERT INTO migrate.cutover_marker (token) VALUES ('$token')" > /dev/null
    sequences="$(on_source_db "$db" -c "
        SELECT format('SELECT setval(%L, %s, %s);', format('%I.%I', schemaname, sequencename),
                      coalesce(last_value, start_value),
                      CASE WHEN last_value IS NULL THEN 'false' ELSE 'true' END)
        FROM pg_sequences")"
    remote "bash -s" <<EOF_REMOTE
set -e
deadline=\$(( \$(date +%s) + ${MIGRATE_SYNC_TIMEOUT_S:-14400} ))
until [ "\$(runuser -u postgres -- psql -XAt -d $(printf %q "$db") -c "SELECT count(*) FROM migrate.cutover_marker WHERE token = '$token'")" = 1 ]; do
    if [ "\$(date +%s)" -gt "\$deadline" ]; then echo "database $db on the target did not catch up" >&2; exit 1; fi
    sleep 0.05
done
runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -d $(printf %q "$db") > /dev/null <<'EOF_SQL'
$sequences
EOF_SQL
EOF_REMOTE
}

unsubscribe() {  # once the targets serve: end the subscription (its slot on the source too)
    local db="$1"
    subscribed_here "$db" || return 0
    echo "DROP SUBSCRIPTION IF EXISTS migrate_$db; DROP SCHEMA IF EXISTS migrate CASCADE;" \
        | on_target_db "$db" > /dev/null
    remember_writes "$db" "$(writes_of "$db")"
    rm -f "$SUBSCRIBED-$db"
    echo changed
}

unpublish() {  # what publish left, once the source is decommissioned (the role stays:
    local db="$1" changed="" hba line  # other systems' databases may still use it)
    if published "$db"; then
        on_source_db "$db" -c "DROP PUBLICATION migrate_$db" > /dev/null
        changed=changed
    fi
    if [ "$(on_source_db postgres -c "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'migrate_$db' AND NOT active")" = 1 ]; then
        on_source_db postgres -c "SELECT pg_drop_replication_slot('migrate_$db')" > /dev/null
        changed=changed
    fi
    if [ "$(on_source_db "$db" -c "SELECT count(*) FROM pg_namespace WHERE nspname = 'migrate'")" = 1 ]; then
        on_source_db "$db" -c "DROP SCHEMA migrate CASCADE" > /dev/null
        changed=changed
    fi
    hba="$(on_source_db postgres -c 'SHOW hba_file')"
    line="host    $db  $REPLICATOR  $target/32  scram-sha-256"
    if grep -qxF "$line" "$hba"; then
        grep -vxF "$line" "$hba" > "$hba.migrate" || true
        cat "$hba.migrate" > "$hba"
        rm -f "$hba.migrate"
        on_source_db postgres -c "SELECT pg_reload_conf()" > /dev/null
        changed=changed
    fi
    [ -z "$changed" ] || echo changed
}

mode="${1:-}"
shift || true
case "$mode" in
    sums) db_sums "$1" ;;
    copy) target="$2"; copy "$1" ;;
    publish) target="$2"; publish "$@" ;;
    subscribe) target="$2"; subscribe "$@" ;;
    unpublish) target="$2"; unpublish "$1" ;;
    unsubscribe) target="$2"; for db in $1; do unsubscribe "$db"; done ;;
    freeze) freeze "$@" ;;
    final) target="$1"; final ;;
    start) start "$@" ;;
    persist) persist "$@" ;;
    preview) target="$1"; preview "$@" ;;
    *) echo "usage: $0 sums DB | copy DB TARGET | publish DB TARGET VERIFIER" \
            "| subscribe DB TARGET SOURCE_ADDRESS | freeze RECORD UNIT... | final TARGET" \
            "| start UNIT:PORT:PATH... | preview TARGET UNIT..." >&2; exit 2 ;;
esac
