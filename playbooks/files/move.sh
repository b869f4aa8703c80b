#!/bin/bash
# move.sh: the shell side of moving one host's data and services, run on that host by the
# plays (ansible.builtin.script). Few round trips on purpose: the cutover steps run while
# nothing serves. One mode per step, so a play can put a barrier between steps (every source
# frozen before any final sync; every sync done before any target starts).
#
#   move.sh sums DB                  per-table "schema.table rows checksum" of DB here
#   move.sh copy DB TARGET           pg_dump -Fc into pg_restore --create on TARGET unless both
#                                    sides hold the same rows (remembers the writes it saw)
#   move.sh publish DB TARGET ROLE   (SCRAM verifier on stdin) make DB replicable to TARGET
#                                    (wal_level=logical, DB's own replication ROLE with that
#                                    verifier, publication, pg_hba line for 127.0.0.1, where
#                                    the replication tunnel ends); falls back to "copy" when a
#                                    table has no key
#   move.sh subscribe DB TARGET PORT ROLE  (password on stdin) TARGET subscribes to DB as
#                                    ROLE through the replication tunnel
#                                    (replication_tunnel.sh: PORT on its loopback) and copies
#                                    it; returns once every table is in step; "copy" when DB
#                                    is not published
#   move.sh unsubscribe TARGET DB... after the cutover: end the subscriptions
#   move.sh unpublish DB TARGET ROLE remove the publication, slot, marker schema, pg_hba
#                                    line and ROLE
#   move.sh freeze RECORD UNIT...    record how the units run (once: rollback restores exactly
#                                    that), then stop them
#   move.sh persist enable|disable UNIT...  whether the units start at boot (after the start)
#   move.sh final TARGET ITEM...     final rsync of each tree:PATH and catch-up of each
#                                    database:METHOD:NAME, to TARGET (a subscription's through
#                                    the replication tunnel $MIGRATE_TUNNEL_UNIT)
#   move.sh start UNIT PORT PATH...  start the units, wait for each health path
#   move.sh preview TARGET ITEM...   what freeze and final would do (check mode) for each
#                                    unit:NAME, tree:PATH and database:METHOD:NAME
#
# Names from the manifest or a source host (databases, units, paths) are data: one argument
# each, psql variables or format('%I') in SQL, quoted for the target's shell, never pasted
# into SQL or a command line. Secrets (verifier, password) only on stdin.
#
# ROLE is the replication role of one system's database (secret_files.replication_account:
# migrate_repl_ and 16 hex digits), never shared. An earlier version's shared role
# (migrate_replicator) goes once no pg_hba line admits it any more: each database it served
# had its own line, removed when its subscription is pointed at ROLE or it is unpublished.
#
# $MIGRATE_SSH is the ssh command to the target (migration key, host key checked).
# Prints "changed" when it changed something.
set -euo pipefail
as_postgres() { runuser -u postgres -- "$@"; }
remote() { $MIGRATE_SSH "root@$target" "$@"; }
q() { printf "'%s'" "${1//\'/\'\\\'\'}"; }  # one word for the target's shell, whatever it holds
# DB as a libpq connection string: psql -d and pg_dump -d take a name holding "=" for one.
conn() { local v="${1//\\/\\\\}"; printf "dbname='%s'" "${v//\'/\\\'}"; }
# DB as part of a file name of this host's state (a name may hold "/" or be "..").
state_name() {
    if [[ "$1" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]*$ ]]; then
        printf '%s' "$1"
    else
        printf '%%%s' "$(printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n')"
    fi
}
rsync_tree() {  # rsync_tree TREE [extra rsync options]
    local tree="${1%/}"
    shift
    rsync --archive --hard-links --partial --delete --mkpath --checksum-choice=xxh128 \
        --protect-args --rsh="$MIGRATE_SSH" --out-format='%i %n%L' "$@" -- "$tree/" \
        "root@$target:$tree/"
}
json_string() {
    local s="${1//\\/\\\\}"
    s="${s//\"/\\\"}"
    s="${s//$'\n'/\\n}"
    s="${s//$'\t'/\\t}"
    printf '"%s"' "${s//$'\r'/\\r}"
}

freeze() {
    local record="$1" changed=""
    shift
    [ "$#" -gt 0 ] || return 0
    if [ ! -e "$record" ]; then
        mkdir -p -m 0700 "$(dirname "$record")"
        local unit lines json="{"
        for unit in "$@"; do
            lines="$(systemctl show --property=UnitFileState --property=ActiveState -- "$unit" \
                     | LC_ALL=C sort | sed 's/.*/"&"/' | paste -sd, -)"
            json+="$([ "$json" = "{" ] || echo ,)$(json_string "$unit"): [$lines]"
        done
        printf '%s}\n' "$json" > "$record.tmp"
        chmod 0600 "$record.tmp"
        mv "$record.tmp" "$record"
    fi
    for unit in "$@"; do
        if systemctl is-active --quiet -- "$unit"; then changed=changed; fi
    done
    systemctl stop -- "$@"  # disabling (a daemon reload) waits until the targets serve: persist
    [ -z "$changed" ] || echo changed
}

persist() {  # persist enable|disable UNIT...: whether the units start at boot
    local want="$1" unit changed=""
    shift
    for unit in "$@"; do
        if systemctl is-enabled --quiet -- "$unit"; then
            [ "$want" = enable ] || changed=changed
        else
            [ "$want" = disable ] || changed=changed
        fi
    done
    [ -z "$changed" ] || systemctl "$want" --quiet -- "$@"
    [ -z "$changed" ] || echo changed
}

# The writes a database has seen (table counters, and when they were last reset): taken
# before a copy and compared at the final sync, so an unchanged database is not copied again
# while nothing serves. A wrong "unchanged" cannot pass unseen: the cutover compares every
# table's rows and checksums of both sides afterwards and rolls back when they differ.
writes_of() {
    as_postgres psql -XAt -v ON_ERROR_STOP=1 -d "$(conn "$1")" -c "
        SELECT (SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) || '/' || count(*)
                FROM pg_stat_user_tables)
               || '/' || coalesce((SELECT stats_reset::text FROM pg_stat_database
                                   WHERE datname = current_database()), '-')"
}

final() {  # final ITEM...: each tree:PATH synced, then each database:METHOD:NAME caught up
    local item synced changed=""
    for item in "$@"; do
        [[ "$item" == tree:* ]] || continue
        synced="$(rsync_tree "${item#tree:}")"
        [ -z "$synced" ] || changed=changed
    done
    for item in "$@"; do
        [[ "$item" == database:* ]] || continue
        final_database "${item#database:}"
    done
    [ -z "$changed" ] || echo changed
}

final_database() {  # final_database METHOD:NAME; sets final's "changed" when it did something
    local method="${1%%:*}" db="${1#*:}" writes
    if [ "$method" = logical_replication ] && subscribed_here "$db"; then
        tunnel_running
        catch_up "$db"
        changed=changed
        return 0
    fi
    if unwritten_since_copy "$db"; then return 0; fi
    writes="$(writes_of "$db")"
    dump_restore "$db"
    remember_writes "$db" "$writes"
    changed=changed
}

start() {  # start UNIT PORT PATH [UNIT PORT PATH]...
    local i units=() changed=""
    for ((i = 1; i <= $#; i += 3)); do units+=("${!i}"); done
    [ "${#units[@]}" -gt 0 ] || return 0
    for i in "${units[@]}"; do
        if ! systemctl is-active --quiet -- "$i"; then changed=changed; fi
    done
    systemctl start -- "${units[@]}"  # enabling waits until they serve: persist
    python3 - "$@" <<'PY'
import sys, time, urllib.request
deadline = time.monotonic() + 120
specs = sys.argv[1:]
for unit, port, path in zip(specs[0::3], specs[1::3], specs[2::3]):
    url = f"http://127.0.0.1:{int(port)}{path}"
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

preview() {  # preview TARGET ITEM...: each unit:NAME, tree:PATH, database:METHOD:NAME
    local item unit tree method db line
    shift
    for item in "$@"; do
        [[ "$item" == unit:* ]] || continue
        unit="${item#unit:}"
        echo "would stop and disable $unit ($(systemctl is-active -- "$unit" || true)," \
             "$(systemctl is-enabled -- "$unit" || true))"
    done
    for item in "$@"; do
        [[ "$item" == tree:* ]] || continue
        tree="${item#tree:}"
        rsync_tree "$tree" --dry-run | while IFS= read -r line; do
            printf 'would sync %s: %s\n' "$tree" "$line"
        done
    done
    for item in "$@"; do
        [[ "$item" == database:* ]] || continue
        method="${item#database:}"
        db="${method#*:}"
        method="${method%%:*}"
        if [ "$method" = logical_replication ] && subscribed_here "$db"; then
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
    as_postgres psql -XAt -v ON_ERROR_STOP=1 -d "$(conn "$1")" -c "
        SELECT format('SELECT %L, count(*), coalesce(sum((''x'' || substr(md5(t::text), 1, 16))::bit(64)::bigint), 0)::text FROM %I.%I AS t;',
                      schemaname || '.' || tablename, schemaname, tablename)
        FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema', 'migrate')
        ORDER BY schemaname, tablename" \
    | as_postgres psql -XAt -F ' ' -v ON_ERROR_STOP=1 -d "$(conn "$1")"
}

STATE=/var/lib/migrate
remember_writes() { mkdir -p -m 0700 "$STATE"; printf '%s\n' "$2" > "$STATE/writes-$(state_name "$1")"; }
unwritten_since_copy() {
    local file
    file="$STATE/writes-$(state_name "$1")"
    [ -e "$file" ] && [ "$(cat "$file")" = "$(writes_of "$1")" ]
}

dump_restore() {
    remote "runuser -u postgres -- dropdb --if-exists --force -- $(q "$1")"
    as_postgres pg_dump -Fc -d "$(conn "$1")" \
        | remote "runuser -u postgres -- pg_restore --create --exit-on-error -d postgres"
}

copy() {
    local db="$1" here there writes
    writes="$(writes_of "$db")"
    here="$(db_sums "$db")"
    there="$(on_target_run db_sums "$db" || true)"
    if [ -n "$here" ] && [ "$here" = "$there" ]; then
        remember_writes "$db" "$writes"
        echo unchanged
        return 0
    fi
    dump_restore "$db"
    there="$(on_target_run db_sums "$db")"
    if [ "$here" != "$there" ]; then
        echo "database $db differs on $target after the copy" >&2
        exit 1
    fi
    remember_writes "$db" "$writes"
    echo changed
}

# ---- logical replication: the target subscribes to the source while it serves; at the
# cutover a marker row written after the freeze tells when the target has applied everything.
LEGACY_ROLE=migrate_replicator  # an earlier version's, shared by every database of the host
# ROLE as the transfer computed it; no other name reaches SQL or pg_hba.conf.
role_name() {
    if ! [[ "$1" =~ ^migrate_repl_[0-9a-f]{16}$ ]]; then
        echo "$(q "$1") is not a replication role of migrate (migrate_repl_ and 16 hex digits)" >&2
        exit 2
    fi
    printf '%s' "$1"
}
on_source_db() { local db="$1"; shift; as_postgres psql -XAt -v ON_ERROR_STOP=1 -d "$(conn "$db")" "$@"; }
on_target_db() {  # on_target_db DB [PSQL OPTION]...: SQL on stdin, run by psql on the target
    local db="$1" options="" option
    shift
    for option in "$@"; do options+=" $(q "$option")"; done
    remote "runuser -u postgres -- psql -XAt -v ON_ERROR_STOP=1 -d $(q "$(conn "$db")")$options"
}
# on_target_run FUNCTION ARG...: FUNCTION of this script run on the target (sent as text with
# the helpers it may use: this script may run from a string, bash -c, with no file to send).
on_target_run() {
    local fn="$1" args="" arg
    shift
    for arg in "$@"; do args+=" $(q "$arg")"; done
    remote "bash -c $(q "set -euo pipefail; $(declare -f as_postgres conn "$fn"); $fn \"\$@\"") $fn$args"
}
timeout_s() { printf '%d' "${MIGRATE_SYNC_TIMEOUT_S:-14400}"; }

# Where this source host remembers that a target subscribed to a database (so the cutover
# needs no round trip to find out).
subscribed_here() { [ -e "$STATE/subscribed-$(state_name "$1")" ]; }
remember_subscribed() { mkdir -p -m 0700 "$STATE" && touch "$STATE/subscribed-$(state_name "$1")"; }
# The replication password on the target, read by the subscription's own connections only.
PASSFILES=/var/lib/postgresql/migrate
passfile_of() { printf '%s/replication-%s.pgpass' "$PASSFILES" "$(state_name "$1")"; }

published() { [ "$(on_source_db "$1" -v pub="migrate_$1" <<< "SELECT count(*) FROM pg_publication WHERE pubname = :'pub'")" = 1 ]; }
subscribed() { [ "$(on_target_db postgres -v sub="migrate_$1" <<< "SELECT count(*) FROM pg_subscription WHERE subname = :'sub'")" = 1 ]; }

keyless_tables() {
    on_source_db "$1" -c "
        SELECT string_agg(format('%I.%I', n.nspname, c.relname), ', ')
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'migrate')
          AND c.relreplident = 'd' AND NOT EXISTS (
              SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)"
}

# The pg_hba.conf line admitting ROLE's subscription to DB from ADDRESS (name quoted):
# 127.0.0.1, where the replication tunnel ends; the target's own address in earlier versions,
# which connected straight to this host's port.
hba_line() {  # hba_line DB ADDRESS ROLE
    if [[ "$1" == *[[:cntrl:]\"]* ]] || ! [[ "$2" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]]; then
        echo "database $(q "$1") or address $(q "$2") does not fit a pg_hba.conf line" >&2
        return 1
    fi
    printf 'host    "%s"  %s  %s/32  scram-sha-256' "$1" "$3" "$2"
}
TUNNEL_END=127.0.0.1  # where the tunnel's connections reach this host's PostgreSQL

# Each line of pg_hba.conf that is one of LINE... removed (then the server reloads); sets the
# caller's "changed" when one was there.
hba_drop() {  # hba_drop LINE...
    local hba line
    local -a patterns=()
    for line in "$@"; do patterns+=(-e "$line"); done
    hba="$(on_source_db postgres -c 'SHOW hba_file')"
    grep -qxF "${patterns[@]}" "$hba" || return 0
    grep -vxF "${patterns[@]}" "$hba" > "$hba.migrate" || true
    cat "$hba.migrate" > "$hba"
    rm -f "$hba.migrate"
    on_source_db postgres -c "SELECT pg_reload_conf()" > /dev/null
    changed=changed
}

# The replication tunnel the subscriptions read through (replication_tunnel.sh) runs: a
# rollback removes it, and a catch-up without it would wait for its marker in vain. One that
# is reconnecting gets a minute.
tunnel_running() {
    local unit="${MIGRATE_TUNNEL_UNIT:-}" i
    [ -n "$unit" ] || return 0
    for ((i = 0; i < 300; i++)); do
        if systemctl is-active --quiet -- "$unit"; then return 0; fi
        [ -e "/etc/systemd/system/$unit" ] || break
        sleep 0.2
    done
    echo "the replication tunnel $unit to $target is not running (a rollback removes it):" \
         "run the transfer again before the cutover" >&2
    exit 1
}

# The role the target subscribes as (replicator_role ROLE), with the SCRAM verifier on stdin;
# prints "same" when it was already so. The verifier travels as COPY data and reaches ALTER
# ROLE inside the server: no argument list and no logged statement holds it.
replicator_role() {
    local verifier
    IFS= read -r verifier
    { cat <<'SQL'
SELECT set_config('migrate.role', :'role', false) \g /dev/null
CREATE TEMP TABLE migrate_secret (verifier text NOT NULL);
COPY migrate_secret FROM STDIN (FORMAT csv, DELIMITER E'\x01', QUOTE E'\x02');
SQL
      printf '%s\n\\.\n' "$verifier"
      cat <<'SQL'
SELECT CASE WHEN r.rolname IS NULL THEN 'missing'
            WHEN r.rolpassword IS DISTINCT FROM s.verifier OR NOT r.rolreplication
                 OR NOT r.rolcanlogin THEN 'differs'
            ELSE 'same' END
FROM migrate_secret s LEFT JOIN pg_authid r ON r.rolname = current_setting('migrate.role');
DO $$
DECLARE
    wanted text := current_setting('migrate.role');
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = wanted) THEN
        EXECUTE format('CREATE ROLE %I', wanted);
    END IF;
    EXECUTE format('ALTER ROLE %I WITH LOGIN REPLICATION PASSWORD %L', wanted,
                   (SELECT verifier FROM migrate_secret));
EXCEPTION WHEN OTHERS THEN  -- raised again without the statement, which holds the verifier
    RAISE EXCEPTION 'setting up the replication role % failed: %', wanted, SQLERRM;
END $$;
SQL
    } | on_source_db postgres -q -v role="$1"
}

publish() {  # publish DB ROLE, the SCRAM verifier on stdin
    local db="$1" name changed="" keyless role hba line direct
    name="$(role_name "$2")"
    line="$(hba_line "$db" "$TUNNEL_END" "$name")"
    direct="$(hba_line "$db" "$target" "$LEGACY_ROLE")"
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
    role="$(replicator_role "$name")"
    [ "$role" = same ] || changed=changed
    if [ "$(on_source_db "$db" -c "SELECT count(*) FROM pg_tables WHERE schemaname = 'migrate' AND tablename = 'cutover_marker'")" = 0 ]; then
        on_source_db "$db" -c "CREATE SCHEMA IF NOT EXISTS migrate;
            CREATE TABLE migrate.cutover_marker (token text PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())" > /dev/null
        changed=changed
    fi
    # Reading rights as a role membership, not per-table grants: dumps stay free of them.
    on_source_db postgres -v role="$name" > /dev/null 2>&1 \
        <<< "SELECT format('GRANT pg_read_all_data TO %I', :'role') \gexec"
    if ! published "$db"; then
        on_source_db "$db" -v pub="migrate_$db" > /dev/null \
            <<< "SELECT format('CREATE PUBLICATION %I FOR ALL TABLES', :'pub') \gexec"
        changed=changed
    fi
    hba="$(on_source_db postgres -c 'SHOW hba_file')"
    if ! grep -qxF -- "$line" "$hba"; then
        printf '%s\n' "$line" >> "$hba"
        on_source_db postgres -c "SELECT pg_reload_conf()" > /dev/null
        changed=changed
    fi
    # an earlier version's lines for the target's own address: nothing connects from there now
    if [ "$target" != "$TUNNEL_END" ]; then
        hba_drop "$direct" "host    $db  $LEGACY_ROLE  $target/32  scram-sha-256"
    fi
    [ -z "$changed" ] || echo changed
}

# Runs on the target: the passfile PATH (postgres's, 0600) from stdin.
target_write_passfile() {
    install -d -m 0700 -o postgres -g postgres "$(dirname "$1")"
    runuser -u postgres -- sh -c 'umask 077 && cat > "$1.tmp" && chmod 0600 "$1.tmp" && mv -f "$1.tmp" "$1"' \
        sh "$1"
}

# The subscription's connection: the replication tunnel's PORT on the target's loopback (to
# this host's PostgreSQL), as psql's :conninfo. It reads its password from the passfile, so
# neither the CREATE SUBSCRIPTION statement (in the target's log when it fails) nor
# pg_subscription holds it.
conninfo_sql() {
    cat <<'SQL'
SELECT string_agg(k || '=''' || replace(replace(v, '\', '\\'), '''', '\''') || '''', ' ')
       AS conninfo
FROM (VALUES ('host', '127.0.0.1'), ('port', :'port'), ('dbname', :'db'),
             ('user', :'role'), ('passfile', :'passfile')) AS c (k, v) \gset
SQL
}
create_subscription() {  # create_subscription DB PORT ROLE
    { conninfo_sql
      cat <<'SQL'
SELECT format('CREATE SUBSCRIPTION %I CONNECTION %L PUBLICATION %I', 'migrate_' || :'db',
              :'conninfo', 'migrate_' || :'db') \gexec
SQL
    } | on_target_db "$1" -q -v db="$1" -v port="$2" -v role="$3" \
            -v passfile="$(passfile_of "$1")" > /dev/null
}
# A subscription of an earlier version (straight to this host's address, or as the shared
# role) pointed at the tunnel as ROLE instead; prints 1 when it was elsewhere, else 0.
point_subscription() {  # point_subscription DB PORT ROLE
    { conninfo_sql
      cat <<'SQL'
SELECT count(*) FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid
WHERE d.datname = current_database() AND s.subname = 'migrate_' || :'db'
  AND s.subconninfo IS DISTINCT FROM :'conninfo';
SELECT format('ALTER SUBSCRIPTION %I CONNECTION %L', s.subname, :'conninfo')
FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid
WHERE d.datname = current_database() AND s.subname = 'migrate_' || :'db'
  AND s.subconninfo IS DISTINCT FROM :'conninfo' \gexec
SQL
    } | on_target_db "$1" -q -v db="$1" -v port="$2" -v role="$3" -v passfile="$(passfile_of "$1")"
}

# ROLE's password (stdin) in DB's passfile on the target, the only line libpq finds there.
write_passfile() {  # write_passfile DB ROLE
    local password
    IFS= read -r password
    password="${password//\\/\\\\}"
    printf '*:*:*:%s:%s\n' "$2" "${password//:/\\:}" \
        | on_target_run target_write_passfile "$(passfile_of "$1")"
}

# An earlier version's pg_hba lines of DB for the shared role gone (its subscription now
# reads as DB's own role, or it is unpublished); the shared role too once no line admits it
# (no database of this host replicates as it any more). Sets the caller's "changed".
drop_legacy_role() {  # drop_legacy_role DB
    local hba tunnel direct
    tunnel="$(hba_line "$1" "$TUNNEL_END" "$LEGACY_ROLE")"
    direct="$(hba_line "$1" "$target" "$LEGACY_ROLE")"
    hba_drop "$tunnel" "$direct" "host    $1  $LEGACY_ROLE  $target/32  scram-sha-256"
    hba="$(on_source_db postgres -c 'SHOW hba_file')"
    if ! grep -qE "[[:space:]]$LEGACY_ROLE[[:space:]]+[0-9.]+/32[[:space:]]" "$hba" \
        && [ "$(on_source_db postgres -c "SELECT count(*) FROM pg_roles WHERE rolname = '$LEGACY_ROLE'")" = 1 ]; then
        on_source_db postgres -c "DROP ROLE $LEGACY_ROLE" > /dev/null
        changed=changed
    fi
}

subscribe() {  # subscribe DB TARGET PORT ROLE, the replication password on stdin
    local db="$1" port="$3" name password pointed changed=""
    name="$(role_name "$4")"
    IFS= read -r password
    if ! [[ "$port" =~ ^[1-9][0-9]{0,4}$ ]]; then
        echo "the replication tunnel's port $(q "$port") is not a port number" >&2
        exit 2
    fi
    if ! published "$db"; then
        copy "$db"
        return 0
    fi
    if subscribed "$db"; then
        # the passfile first: a subscription pointed at ROLE finds its password at once
        printf '%s\n' "$password" | write_passfile "$db" "$name"
        pointed="$(point_subscription "$db" "$port" "$name")"
        wait_in_step "$db"
        remember_subscribed "$db"
        drop_legacy_role "$db"
        if [ "$pointed" = 0 ] && [ -z "$changed" ]; then echo unchanged; else echo changed; fi
        return 0
    fi
    remote "runuser -u postgres -- dropdb --if-exists --force -- $(q "$db")"
    as_postgres pg_dump --schema-only --create --no-publications --no-subscriptions -d "$(conn "$db")" \
        | remote "runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -d postgres" > /dev/null
    printf '%s\n' "$password" | write_passfile "$db" "$name"
    if ! create_subscription "$db" "$port" "$name"; then
        remote "rm -f -- $(q "$(passfile_of "$db")")"
        echo "subscribing the target to $db failed" >&2
        exit 1
    fi
    wait_in_step "$db"
    remember_subscribed "$db"
    drop_legacy_role "$db"
    echo changed
}

target_wait_in_step() {  # target_wait_in_step CONN SUBSCRIPTION TIMEOUT_S (runs on the target)
    local deadline=$(( $(date +%s) + $3 ))
    until [ "$(runuser -u postgres -- psql -XAt -d "$1" -v sub="$2" <<< "SELECT count(*) FROM pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid WHERE s.subname = :'sub' AND r.srsubstate <> 'r'")" = 0 ]; do
        if [ "$(date +%s)" -gt "$deadline" ]; then echo "subscription $2 on the target is not in step after $3 s" >&2; exit 1; fi
        sleep 0.2
    done
}
wait_in_step() { on_target_run target_wait_in_step "$(conn "$1")" "migrate_$1" "$(timeout_s)" < /dev/null; }

# Runs on the target: wait for the marker TOKEN, then apply the sequences' SQL on stdin.
target_catch_up() {  # target_catch_up CONN TOKEN TIMEOUT_S
    local deadline=$(( $(date +%s) + $3 ))
    until [ "$(runuser -u postgres -- psql -XAt -d "$1" -v token="$2" <<< "SELECT count(*) FROM migrate.cutover_marker WHERE token = :'token'")" = 1 ]; do
        if [ "$(date +%s)" -gt "$deadline" ]; then echo "the target did not catch up after $3 s" >&2; exit 1; fi
        sleep 0.05
    done
    runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -d "$1" > /dev/null
}

catch_up() {  # the source is frozen: wait until the marker arrives, then copy the sequences
    local db="$1" token
    token="cutover-$(date +%s%N)"
    on_source_db "$db" -c "INSERT INTO migrate.cutover_marker (token) VALUES ('$token')" > /dev/null
    on_source_db "$db" -c "
        SELECT format('SELECT setval(%L, %s, %s);', format('%I.%I', schemaname, sequencename),
                      coalesce(last_value, start_value),
                      CASE WHEN last_value IS NULL THEN 'false' ELSE 'true' END)
        FROM pg_sequences" \
    | on_target_run target_catch_up "$(conn "$db")" "$token" "$(timeout_s)"
}

unsubscribe() {  # once the targets serve: end the subscription (its slot on the source too)
    local db="$1" changed
    subscribed_here "$db" || return 0
    on_target_db "$db" -q -v sub="migrate_$db" > /dev/null <<'SQL'
SELECT format('DROP SUBSCRIPTION IF EXISTS %I', :'sub') \gexec
DROP SCHEMA IF EXISTS migrate CASCADE;
SQL
    remote "rm -f -- $(q "$(passfile_of "$db")")"
    drop_legacy_role "$db"  # a subscription an earlier version made and none pointed since
    remember_writes "$db" "$(writes_of "$db")"
    rm -f "$STATE/subscribed-$(state_name "$db")"
    echo changed
}

unpublish() {  # unpublish DB ROLE: what publish left, once the source is decommissioned
    local db="$1" name changed="" line
    name="$(role_name "$2")"
    line="$(hba_line "$db" "$TUNNEL_END" "$name")"
    if published "$db"; then
        on_source_db "$db" -v pub="migrate_$db" > /dev/null \
            <<< "SELECT format('DROP PUBLICATION %I', :'pub') \gexec"
        changed=changed
    fi
    if [ "$(on_source_db postgres -v slot="migrate_$db" <<< "SELECT count(*) FROM pg_replication_slots WHERE slot_name = :'slot' AND NOT active")" = 1 ]; then
        on_source_db postgres -v slot="migrate_$db" > /dev/null <<< "SELECT pg_drop_replication_slot(:'slot')"
        changed=changed
    fi
    if [ "$(on_source_db "$db" -c "SELECT count(*) FROM pg_namespace WHERE nspname = 'migrate'")" = 1 ]; then
        on_source_db "$db" -c "DROP SCHEMA migrate CASCADE" > /dev/null
        changed=changed
    fi
    hba_drop "$line"
    drop_legacy_role "$db"  # an earlier version's lines of DB, and its role once unused
    if [ "$(on_source_db postgres -v role="$name" <<< "SELECT count(*) FROM pg_roles WHERE rolname = :'role'")" = 1 ]; then
        on_source_db postgres -v role="$name" > /dev/null \
            <<< "SELECT format('DROP ROLE %I', :'role') \gexec"
        changed=changed
    fi
    [ -z "$changed" ] || echo changed
}

mode="${1:-}"
shift || true
case "$mode" in
    sums) db_sums "$1" ;;
    copy) target="$2"; copy "$1" ;;
    publish) target="$2"; publish "$1" "${3-}" ;;
    subscribe) target="$2"; subscribe "$@" ;;
    unpublish) target="$2"; unpublish "$1" "${3-}" ;;
    unsubscribe) target="$1"; shift; for db in "$@"; do unsubscribe "$db"; done ;;
    freeze) freeze "$@" ;;
    final) target="$1"; shift; final "$@" ;;
    start) start "$@" ;;
    persist) persist "$@" ;;
    preview) target="$1"; preview "$@" ;;
    *) echo "usage: $0 sums DB | copy DB TARGET | publish DB TARGET ROLE (verifier on stdin)" \
            "| subscribe DB TARGET PORT ROLE (password on stdin) | unsubscribe TARGET DB..." \
            "| unpublish DB TARGET ROLE | freeze RECORD UNIT... | persist enable|disable UNIT..." \
            "| final TARGET ITEM... | start UNIT PORT PATH... | preview TARGET ITEM..." >&2; exit 2 ;;
esac
