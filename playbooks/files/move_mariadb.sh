#!/bin/bash
# move_mariadb.sh: the MariaDB side of moving one host's databases (Debian's mariadb-server;
# move.sh is PostgreSQL's), run on that host by the plays. A database moves by a consistent
# dump (mariadb-dump --single-transaction) over the migration ssh into the target's mariadb,
# or one planned binlog_replication is kept in step by the target as a replica of this server
# (binlog, GTID) until the cutover.
#
#   move_mariadb.sh sums DB               per-table "DB.table rows checksum" of DB here
#   move_mariadb.sh users USER TARGET [FROM TO]...   every account USER@HOST of this
#                                         server on TARGET, with its password hash and grants
#                                         (SHOW CREATE USER, SHOW GRANTS), unless already the
#                                         same; USER@FROM becomes USER@TO there
#   move_mariadb.sh mapped USER [FROM TO]...   "FROM TO" of each account USER@FROM here
#   move_mariadb.sh copy DB TARGET        dump DB into TARGET unless both sides hold the same
#                                         rows (remembers the sums it copied)
#   move_mariadb.sh final TARGET DB...    with the source frozen: each DB dumped again when
#                                         its rows changed since the copy
#   move_mariadb.sh preview TARGET DB...  what final or catch_up would do (check mode)
#   move_mariadb.sh replicate TARGET PORT ACCOUNT DB...   (the replication password, then
#                                         its hash, on stdin) TARGET a replica of this server
#                                         for DB..., as ACCOUNT, through the replication tunnel
#                                         (PORT on TARGET's loopback), seeded by one dump at its
#                                         GTID position, unless already one; returns once it is
#                                         in step
#   move_mariadb.sh catch_up TARGET DB... with the source frozen: a replicated DB once TARGET
#                                         applied every write (then no replica, no account);
#                                         any other as final
#   move_mariadb.sh unreplicate TARGET ACCOUNT DB...  the replication account here dropped
#   move_mariadb.sh stop_replica          (on a target) no replica left
#
# ACCOUNT is the replication account of one system's database (the first it replicates:
# one replica a source host; secret_files.replication_account: migrate_repl_ and 16 hex
# digits), never shared. This host remembers which account replicates each DB; an earlier
# version's shared account (migrate_replicator) goes with the last database remembered as
# replicated by it.
#
# Names from the manifest or this host (databases, users, tables) are data: one argument
# each, SQL string literals or backtick identifiers with their quotes doubled, never pasted
# into a command line. A password hash travels only through pipes, never an argument.
#
# $MIGRATE_SSH is the ssh command to the target (migration key, host key checked).
# Prints "changed" when it changed something.
set -euo pipefail
remote() { $MIGRATE_SSH "root@$target" "$@"; }
q() { printf "'%s'" "${1//\'/\'\\\'\'}"; }  # one word for the target's shell, whatever it holds
# TEXT as a MariaDB string literal (the default sql_mode: backslash escapes).
literal() { local v="${1//\\/\\\\}"; printf "'%s'" "${v//\'/\\\'}"; }
# root over the unix socket (Debian's root@localhost authenticates by unix_socket)
sql() { mariadb --batch --skip-column-names --raw "$@"; }
# DB as part of a file name of this host's state (a name may hold "/" or be "..").
state_name() {
    if [[ "$1" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]*$ ]]; then
        printf '%s' "$1"
    else
        printf '%%%s' "$(printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n')"
    fi
}
# on_target_run FUNCTION ARG...: FUNCTION of this script run on the target (sent as text
# with the helpers it uses), stdin passed through.
on_target_run() {
    local fn="$1" args="" arg
    shift
    for arg in "$@"; do args+=" $(q "$arg")"; done
    remote "bash -c $(q "set -euo pipefail; $(declare -f literal sql exists "$fn"); $fn \"\$@\"") $fn$args"
}

# One line per table: its name, rows, and the sum of the first 64 bits of each row's MD5
# over QUOTE() of every column (NULL and 'NULL' differ); all tables read in one snapshot.
# Nothing at all when the database does not exist (yet).
exists() { [ "$(sql <<< "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = $(literal "$1")")" = 1 ]; }
db_sums() {
    exists "$1" || return 0
    { echo "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ;"
      echo "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY;"
      sql <<SQL
SET SESSION group_concat_max_len = 16777216;
SELECT CONCAT('SELECT CONCAT(', QUOTE(CONCAT(t.table_schema, '.', t.table_name)),
              ', '' '', COUNT(*), '' '', COALESCE(SUM(CAST(CONV(LEFT(MD5(CONCAT_WS('','', ',
              GROUP_CONCAT(CONCAT('QUOTE(\`', REPLACE(c.column_name, '\`', '\`\`'), '\`)')
                           ORDER BY c.ordinal_position SEPARATOR ', '),
              ')), 16), 16, 10) AS DECIMAL(20))), 0)) FROM \`',
              REPLACE(t.table_schema, '\`', '\`\`'), '\`.\`',
              REPLACE(t.table_name, '\`', '\`\`'), '\`;')
FROM information_schema.tables t
JOIN information_schema.columns c
  ON c.table_schema = t.table_schema AND c.table_name = t.table_name
WHERE t.table_schema = $(literal "$1") AND t.table_type = 'BASE TABLE'
GROUP BY t.table_schema, t.table_name
ORDER BY t.table_name;
SQL
      echo "COMMIT;"
    } | sql
}

# The accounts of USER here as the statements that make them: SHOW CREATE USER (with the
# password hash) and SHOW GRANTS, one statement a line, accounts ordered by host; names
# quoted with backticks whatever the server's sql_mode, as map_accounts finds them.
user_statements() {
    sql <<SQL | { echo "SET SESSION sql_mode = '', SESSION sql_quote_show_create = ON;"; cat; } | sql
SELECT CONCAT('SHOW CREATE USER ', QUOTE(user), '@', QUOTE(host), '; SHOW GRANTS FOR ',
              QUOTE(user), '@', QUOTE(host), ';')
FROM mysql.user WHERE user = $(literal "$1") ORDER BY host;
SQL
}

# USER@HOST as SHOW CREATE USER and SHOW GRANTS write it.
account() { printf '`%s`@`%s`' "${1//\`/\`\`}" "${2//\`/\`\`}"; }

# The statements on stdin with each account USER@FROM written as USER@TO, for each FROM TO.
map_accounts() {
    local user="$1" line i
    shift
    local -a pairs=("$@")
    while IFS= read -r line; do
        for ((i = 0; i + 1 < ${#pairs[@]}; i += 2)); do
            line="${line//"$(account "$user" "${pairs[i]}")"/"$(account "$user" "${pairs[i + 1]}")"}"
        done
        printf '%s\n' "$line"
    done
}

# has_account USER HOST: whether USER@HOST is an account here.
has_account() { [ "$(sql <<< "SELECT COUNT(*) FROM mysql.user WHERE user = $(literal "$1") AND host = $(literal "$2")")" = 1 ]; }

# "FROM TO" of each FROM TO (a source host's address, its target's) where USER has an
# account on host FROM here: on the target that account is USER@TO (the application logs in
# from its own address).
mapped_hosts() {
    local user="$1"
    shift
    while [ "$#" -ge 2 ]; do
        if has_account "$user" "$1"; then printf '%s %s\n' "$1" "$2"; fi
        shift 2
    done
}

# Runs on the target: USER's accounts replaced by the statements on stdin (every account of
# USER there dropped first, so a host the source does not have goes too), then each account
# USER@FROM renamed USER@TO for each FROM TO (its hash and grants go with it).
target_apply_users() {
    local user="$1" statements
    shift
    statements="$(cat)"
    { sql <<SQL
SELECT CONCAT('DROP USER ', QUOTE(user), '@', QUOTE(host), ';')
FROM mysql.user WHERE user = $(literal "$user");
SQL
      printf '%s\n' "$statements" | sed 's/$/;/'
      while [ "$#" -ge 2 ]; do
          echo "RENAME USER $(literal "$user")@$(literal "$1") TO $(literal "$user")@$(literal "$2");"
          shift 2
      done
      echo "FLUSH PRIVILEGES;"
    } | sql
}

# users USER [FROM TO]...: compared as sorted statements, the source's mapped.
users() {
    local user="$1" statements here there
    local -a pairs=()
    shift
    statements="$(user_statements "$user")"
    if [ -z "$statements" ]; then
        echo "no MariaDB user $(literal "$user") on this host" >&2
        exit 1
    fi
    while [ "$#" -ge 2 ]; do
        if has_account "$user" "$1"; then pairs+=("$1" "$2"); fi
        shift 2
    done
    here="$(printf '%s\n' "$statements" | map_accounts "$user" "${pairs[@]}" | LC_ALL=C sort)"
    there="$(on_target_run user_statements "$user" < /dev/null | LC_ALL=C sort)"
    if [ "$here" = "$there" ]; then return 0; fi
    printf '%s\n' "$statements" | on_target_run target_apply_users "$user" "${pairs[@]}"
    there="$(on_target_run user_statements "$user" < /dev/null | LC_ALL=C sort)"
    if [ "$here" != "$there" ]; then
        echo "the accounts of user $(literal "$user") differ on $target after the copy" >&2
        exit 1
    fi
    echo changed
}

dump_restore() {  # mariadb-dump takes no "--": a name that looks like an option is refused
    if [[ "$1" == -* ]]; then echo "database name $(literal "$1") starts with '-'" >&2; exit 1; fi
    mariadb-dump --single-transaction --quick --routines --triggers --events --hex-blob \
        --add-drop-database --databases "$1" | remote "mariadb --batch"
}

STATE=/var/lib/migrate
sums_file() { printf '%s/mariadb-sums-%s' "$STATE" "$(state_name "$1")"; }
remember_sums() {
    mkdir -p -m 0700 "$STATE"
    printf '%s\n' "$2" > "$(sums_file "$1").tmp"
    mv "$(sums_file "$1").tmp" "$(sums_file "$1")"
}
# Whether DB holds the rows it held at its last copy (its sums then are remembered).
unchanged_since_copy() { [ -e "$(sums_file "$1")" ] && [ "$(cat "$(sums_file "$1")")" = "$2" ]; }

copy() {
    local db="$1" here there
    if ! exists "$db"; then
        echo "database $(literal "$db") does not exist on this host" >&2
        exit 1
    fi
    here="$(db_sums "$db")"
    there="$(on_target_run db_sums "$db" < /dev/null || true)"
    if [ -n "$here" ] && [ "$here" = "$there" ]; then
        remember_sums "$db" "$here"
        echo unchanged
        return 0
    fi
    dump_restore "$db"
    there="$(on_target_run db_sums "$db" < /dev/null)"
    if [ "$here" != "$there" ]; then
        echo "database $(literal "$db") differs on $target after the copy (written meanwhile?)" >&2
        exit 1
    fi
    remember_sums "$db" "$here"
    echo changed
}

# The source is frozen: a database whose rows changed since its copy is dumped again. A
# wrong "unchanged" cannot pass unseen: the cutover compares every table of both sides.
final() {
    local db now changed=""
    for db in "$@"; do
        now="$(db_sums "$db")"
        if unchanged_since_copy "$db" "$now"; then continue; fi
        dump_restore "$db"
        remember_sums "$db" "$now"
        changed=changed
    done
    [ -z "$changed" ] || echo changed
}

preview() {
    local db
    for db in "$@"; do
        if replicated_here "$db"; then
            echo "database $db: would wait until the target has applied its last writes, then end the replication"
            continue
        fi
        if unchanged_since_copy "$db" "$(db_sums "$db")"; then
            echo "database $db: no rows changed since the last copy"
        else
            echo "would copy database $db again (rows changed since the last copy)"
        fi
    done
}

# ---- binlog replication (binlog_replication): while the source serves, the target is a
# replica of this server from the GTID position of a consistent dump of the databases, which
# only they pass (replicate_wild_do_table); at the cutover, the source frozen, it applies the
# last writes and stops being one. The replication account's password reaches the target on
# stdin, this server only its hash; neither is written to this server's binlog. The replica
# connects through the replication tunnel (replication_tunnel.sh: this host's ssh to its
# target), to a port on the target's loopback, and this server sees it come from its own.
LEGACY_ACCOUNT=migrate_replicator  # an earlier version's, shared by every replica of the host
TUNNEL_END=127.0.0.1  # on both hosts: where the replica connects, where it comes from here
sync_timeout_s() { printf '%d' "${MIGRATE_SYNC_TIMEOUT_S:-14400}"; }
# Where this host remembers that its target replicates a database, and as which account (so
# the cutover needs no round trip to find out); an earlier version's file is empty.
replicated_file() { printf '%s/mariadb-replicated-%s' "$STATE" "$(state_name "$1")"; }
replicated_here() { [ -e "$(replicated_file "$1")" ]; }
# ACCOUNT as the transfer computed it; no other name reaches SQL.
account_name() {
    if ! [[ "$1" =~ ^migrate_repl_[0-9a-f]{16}$ ]]; then
        echo "$(literal "$1") is not a replication account of migrate (migrate_repl_ and 16" \
             "hex digits)" >&2
        exit 2
    fi
    printf '%s' "$1"
}
# A replication account (replicator ACCOUNT [HOST]): at the tunnel's end; at the target's
# address in earlier versions, whose replica connected straight to this server.
replicator() { printf '%s@%s' "$(literal "$1")" "$(literal "${2:-$TUNNEL_END}")"; }

# The accounts this host remembers its target replicating DB... as, one a line: "legacy"
# for an earlier version's (the shared account).
remembered_accounts() {
    local db file account
    for db in "$@"; do
        file="$(replicated_file "$db")"
        [ -e "$file" ] || continue
        account="$(cat "$file")"
        if [ -z "$account" ]; then echo legacy; else account_name "$account"; echo; fi
    done | LC_ALL=C sort -u
}
# Whether a database of this host is still remembered as replicated by the shared account.
legacy_claimed() {
    [ -d "$STATE" ] && find "$STATE" -maxdepth 1 -name 'mariadb-replicated-*' -empty | grep -q .
}

# Each ACCOUNT... dropped ("legacy": the shared account, once no database is remembered as
# replicated by it), and the shared account at the target's own address that versions before
# the tunnel made; prints "changed" when one was there.
drop_replicators() {  # drop_replicators ACCOUNT...
    local account pairs="" names=""
    for account in "$@"; do
        if [ "$account" = legacy ]; then
            legacy_claimed && continue
            account="$LEGACY_ACCOUNT"
        else
            account="$(account_name "$account")"
        fi
        pairs+="($(literal "$account"), $(literal "$TUNNEL_END")), "
        names+="$(replicator "$account"), "
    done
    pairs+="($(literal "$LEGACY_ACCOUNT"), $(literal "$target"))"
    names+="$(replicator "$LEGACY_ACCOUNT" "$target")"
    if [ "$(sql <<< "SELECT COUNT(*) FROM mysql.user WHERE (user, host) IN ($pairs)")" = 0 ]; then
        return 0
    fi
    sql <<< "SET SESSION sql_log_bin = 0; DROP USER IF EXISTS $names;"
    echo changed
}

# The replication filter of DB...: "DB.%" each, its "\", "%" and "_" escaped; a name holding
# "," or "." does not fit one.
wild_tables() {
    local db patterns=""
    for db in "$@"; do
        if [ -z "$db" ] || [[ "$db" == *[,.]* ]]; then
            echo "database $(literal "$db") cannot be named in a replication filter (',' or '.')" >&2
            return 1
        fi
        db="${db//\\/\\\\}"
        db="${db//%/\\%}"
        patterns+="${patterns:+,}${db//_/\\_}.%"
    done
    printf '%s' "$patterns"
}

# This server writes a binlog a replica can follow (check_prerequisites says so first).
binlog_ready() {
    local found
    found="$(sql <<< "SELECT CONCAT_WS(' ', @@GLOBAL.log_bin, @@GLOBAL.binlog_format, @@GLOBAL.server_id)")"
    if ! [[ "$found" =~ ^(1|ON)\ ROW\ [1-9][0-9]*$ ]]; then
        echo "MariaDB here cannot be replicated: log_bin, binlog_format and server_id are" \
             "'$found' (needed: 1 ROW and a non-zero server_id)" >&2
        exit 1
    fi
}

# The account the target replicates as (replicator_account ACCOUNT), made from the
# password's hash on stdin; prints "same" when it already was so.
replicator_account() {
    local account hash
    account="$(account_name "$1")"
    IFS= read -r hash
    if ! [[ "$hash" =~ ^\*[0-9A-F]{40}$ ]]; then
        echo "the replication password's hash is not a mysql_native_password hash" >&2
        exit 1
    fi
    if [ "$(sql <<< "SELECT COUNT(*) FROM mysql.user WHERE user = $(literal "$account") AND host = $(literal "$TUNNEL_END") AND authentication_string = $(literal "$hash") AND Repl_slave_priv = 'Y'")" = 1 ]; then
        echo same
        return 0
    fi
    sql <<SQL
SET SESSION sql_log_bin = 0;
CREATE OR REPLACE USER $(replicator "$account") IDENTIFIED BY PASSWORD $(literal "$hash");
GRANT REPLICATION SLAVE ON *.* TO $(replicator "$account");
SQL
}

# Runs on the target: its replica's SHOW SLAVE STATUS as NAME=VALUE lines (none without one).
target_replica_status() {
    mariadb --batch --vertical --execute 'SHOW SLAVE STATUS' \
        | sed -n 's/^ *\([A-Za-z_]*\): \{0,1\}/\1=/p'
}
# on_target_replica FUNCTION ARG...: like on_target_run, with the replica's helpers.
on_target_replica() {
    local fn="$1" args="" arg
    shift
    for arg in "$@"; do args+=" $(q "$arg")"; done
    remote "bash -c $(q "set -euo pipefail; $(declare -f literal sql exists target_replica_status "$fn"); $fn \"\$@\"") $fn$args"
}

# Runs on the target: "running" when it replicates SOURCE:PORT as ACCOUNT by GTID through
# FILTER, both threads running, and holds every DB; else "none" or "stopped" (an earlier
# version's replica, as the shared account, too: the transfer seeds it again as ACCOUNT).
target_replica_state() {  # target_replica_state SOURCE PORT FILTER ACCOUNT DB...
    local source="$1" port="$2" filter="$3" account="$4" status db
    shift 4
    status="$(target_replica_status)"
    if [ -z "$status" ]; then echo none; return 0; fi
    for db in "$@"; do exists "$db" || { echo stopped; return 0; }; done
    if grep -qxF -e Slave_IO_Running=Yes <<< "$status" && grep -qxF Slave_SQL_Running=Yes <<< "$status" \
        && grep -qxF "Master_Host=$source" <<< "$status" \
        && grep -qxF "Master_Port=$port" <<< "$status" \
        && grep -qxF "Master_User=$account" <<< "$status" \
        && grep -qxF "Using_Gtid=Slave_Pos" <<< "$status" \
        && grep -qxF "Replicate_Wild_Do_Table=$filter" <<< "$status"; then
        echo running
    else
        echo stopped
    fi
}

# Runs on the target: no replica left, no filter (prints "changed" when there was one).
target_stop_replica() {
    [ -n "$(target_replica_status)" ] || return 0
    sql <<< "STOP SLAVE; RESET SLAVE ALL; SET GLOBAL replicate_wild_do_table = '';"
    echo changed
}

# Runs on the target: replicate SOURCE as ACCOUNT through FILTER from the GTID position the
# dump set, the password on stdin (kept by the server until RESET SLAVE ALL).
target_start_replica() {  # target_start_replica SOURCE FILTER PORT ACCOUNT
    local password
    IFS= read -r password
    sql <<SQL
CHANGE MASTER TO MASTER_HOST = $(literal "$1"), MASTER_PORT = $3,
    MASTER_USER = $(literal "$4"), MASTER_PASSWORD = $(literal "$password"),
    MASTER_USE_GTID = slave_pos, MASTER_CONNECT_RETRY = 5;
SET GLOBAL replicate_wild_do_table = $(literal "$2");
START SLAVE;
SQL
}

# Runs on the target: wait until the replica, connected to its source, has applied POSITION
# (the source's gtid_binlog_pos), at most TIMEOUT_S; one failing fails at once, one stopped
# without an error (a restart: it does not start by itself) is started again through FILTER.
target_wait_replica() {
    local position="$1" timeout="$2" filter="$3" deadline status
    deadline=$(( $(date +%s) + timeout ))
    while :; do
        status="$(target_replica_status)"
        if [ -z "$status" ]; then
            echo "the target is no replica of its source (GTID position $position not reached)" >&2
            exit 1
        fi
        if grep -q '^Last_\(IO\|SQL\)_Errno=[1-9]' <<< "$status"; then
            echo "the target's replica of its source failed:" \
                 "$(grep '^Last_\(IO\|SQL\)_Error=.' <<< "$status" | tr '\n' ' ')" >&2
            exit 1
        fi
        if grep -qxF Slave_SQL_Running=No <<< "$status"; then
            sql <<< "SET GLOBAL replicate_wild_do_table = $(literal "$filter"); START SLAVE;"
        elif ! grep -qxF Slave_IO_Running=Yes <<< "$status"; then
            sleep 0.2
        elif [ "$(sql <<< "SELECT MASTER_GTID_WAIT($(literal "$position"), 1)")" = 0 ]; then
            return 0
        fi
        if [ "$(date +%s)" -ge "$deadline" ]; then
            echo "the target did not reach its source's GTID position $position within" \
                 "$timeout s (MIGRATE_SYNC_TIMEOUT_S)" >&2
            exit 1
        fi
    done
}

# The target's server_id differs from this server's (prepare_target gives it its own).
distinct_server_ids() {
    local here there
    here="$(sql <<< 'SELECT @@GLOBAL.server_id')"
    there="$(on_target_run sql < <(echo 'SELECT @@GLOBAL.server_id'))"
    if [ "$here" = "$there" ]; then
        echo "the target's MariaDB has server_id $there like this source: a replica needs its" \
             "own (prepare_target writes it in 99-migrate-replica.cnf)" >&2
        exit 1
    fi
}

# replicate PORT ACCOUNT DB... (the password, then its hash, on stdin): the target a replica
# of this server for DB... as ACCOUNT, through the replication tunnel (PORT on the target's
# loopback), seeded by one consistent dump (one GTID position for all), unless it already is
# one in step; returns once it has applied what this server wrote until now. The accounts it
# replicated DB... as before (an earlier version's, another database's) go.
replicate() {
    local port="$1" account password hash filter db previous dropped changed=""
    account="$(account_name "$2")"
    shift 2
    IFS= read -r password
    IFS= read -r hash
    if ! [[ "$port" =~ ^[1-9][0-9]{0,4}$ ]]; then
        echo "the replication tunnel's port $(literal "$port") is not a port number" >&2
        exit 2
    fi
    binlog_ready
    for db in "$@"; do
        exists "$db" || { echo "database $(literal "$db") does not exist on this host" >&2; exit 1; }
        [[ "$db" != -* ]] || { echo "database name $(literal "$db") starts with '-'" >&2; exit 1; }
    done
    filter="$(wild_tables "$@")"
    distinct_server_ids
    previous="$(remembered_accounts "$@")"
    [ "$(printf '%s\n' "$hash" | replicator_account "$account")" = same ] || changed=changed
    if [ "$(on_target_replica target_replica_state "$TUNNEL_END" "$port" "$filter" "$account" "$@" < /dev/null)" != running ]; then
        on_target_replica target_stop_replica < /dev/null > /dev/null
        mariadb-dump --single-transaction --gtid --master-data=1 --quick --routines --triggers \
            --events --hex-blob --add-drop-database --databases "$@" | remote "mariadb --batch"
        printf '%s\n' "$password" \
            | on_target_replica target_start_replica "$TUNNEL_END" "$filter" "$port" "$account"
        changed=changed
    fi
    on_target_replica target_wait_replica "$(sql <<< 'SELECT @@GLOBAL.gtid_binlog_pos')" \
        "$(sync_timeout_s)" "$filter" < /dev/null
    mkdir -p -m 0700 "$STATE"
    for db in "$@"; do printf '%s\n' "$account" > "$(replicated_file "$db")"; done
    previous="$(grep -vxF -- "$account" <<< "$previous" || true)"
    dropped="$(drop_replicators $previous)"  # one account a line, each a plain word
    [ -z "$dropped" ] || changed=changed
    [ -z "$changed" ] || echo changed
}

# catch_up TARGET DB... with the source frozen: a replicated DB once the target has applied
# every write of this server (then no replica, no replication account left); any other DB
# by final (dumped again when its rows changed since the copy).
catch_up() {
    local db accounts
    local -a replicated=() dumped=()
    for db in "$@"; do
        if replicated_here "$db"; then replicated+=("$db"); else dumped+=("$db"); fi
    done
    [ "${#dumped[@]}" -eq 0 ] || final "${dumped[@]}"
    [ "${#replicated[@]}" -gt 0 ] || return 0
    on_target_replica target_wait_replica "$(sql <<< 'SELECT @@GLOBAL.gtid_binlog_pos')" \
        "$(sync_timeout_s)" "$(wild_tables "${replicated[@]}")" < /dev/null
    on_target_replica target_stop_replica < /dev/null > /dev/null
    accounts="$(remembered_accounts "${replicated[@]}")"
    for db in "${replicated[@]}"; do
        remember_sums "$db" "$(db_sums "$db")"
        rm -f "$(replicated_file "$db")"
    done
    drop_replicators $accounts > /dev/null  # one account a line, each a plain word
    echo changed
}

# unreplicate ACCOUNT DB... (rollback, decommission): no replication account of DB... here
# (ACCOUNT, and any this host remembers for them), nothing remembered; the target's replica
# is stopped by stop_replica there.
unreplicate() {
    local account db accounts
    account="$(account_name "$1")"
    shift
    accounts="$(remembered_accounts "$@")"
    accounts="$(grep -vxF -- "$account" <<< "$accounts" || true)"
    for db in "$@"; do rm -f "$(replicated_file "$db")"; done
    drop_replicators "$account" $accounts  # one account a line, each a plain word
}

mode="${1:-}"
shift || true
case "$mode" in
    sums) db_sums "$1" ;;
    users) target="$2"; users "$1" "${@:3}" ;;
    mapped) mapped_hosts "$@" ;;
    copy) target="$2"; copy "$1" ;;
    final) target="$1"; shift; final "$@" ;;
    preview) target="$1"; shift; preview "$@" ;;
    replicate) target="$1"; shift; replicate "$@" ;;
    catch_up) target="$1"; shift; catch_up "$@" ;;
    unreplicate) target="$1"; shift; unreplicate "$@" ;;
    stop_replica) if command -v mariadb > /dev/null; then target_stop_replica; fi ;;
    *) echo "usage: $0 sums DB | users USER TARGET [FROM TO]... | mapped USER [FROM TO]..." \
            "| copy DB TARGET | final TARGET DB..." \
            "| preview TARGET DB... | replicate TARGET PORT ACCOUNT DB..." \
            "| catch_up TARGET DB... | unreplicate TARGET ACCOUNT DB... | stop_replica" >&2
        exit 2 ;;
esac
