#!/bin/bash
# move_mariadb.sh: the MariaDB side of moving one host's databases (Debian's mariadb-server;
# move.sh is PostgreSQL's), run on that host by the plays. Every database moves by a
# consistent dump (mariadb-dump --single-transaction) over the migration ssh into the
# target's mariadb; replication (binlog/GTID) is not done here.
#
#   move_mariadb.sh sums DB               per-table "DB.table rows checksum" of DB here
#   move_mariadb.sh users USER TARGET     every account USER@HOST of this server on TARGET,
#                                         with its password hash and grants (SHOW CREATE
#                                         USER, SHOW GRANTS), unless already the same
#   move_mariadb.sh copy DB TARGET        dump DB into TARGET unless both sides hold the same
#                                         rows (remembers the sums it copied)
#   move_mariadb.sh final TARGET DB...    with the source frozen: each DB dumped again when
#                                         its rows changed since the copy
#   move_mariadb.sh preview TARGET DB...  what final would do (check mode)
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
# password hash) and SHOW GRANTS, one statement a line, accounts ordered by host.
user_statements() {
    sql <<SQL | sql
SELECT CONCAT('SHOW CREATE USER ', QUOTE(user), '@', QUOTE(host), '; SHOW GRANTS FOR ',
              QUOTE(user), '@', QUOTE(host), ';')
FROM mysql.user WHERE user = $(literal "$1") ORDER BY host;
SQL
}

# Runs on the target: USER's accounts replaced by the statements on stdin (every account of
# USER there dropped first, so a host the source does not have goes too).
target_apply_users() {
    local statements
    statements="$(cat)"
    { sql <<SQL
SELECT CONCAT('DROP USER ', QUOTE(user), '@', QUOTE(host), ';')
FROM mysql.user WHERE user = $(literal "$1");
SQL
      printf '%s\n' "$statements" | sed 's/$/;/'
      echo "FLUSH PRIVILEGES;"
    } | sql
}

users() {
    local user="$1" here there
    here="$(user_statements "$user")"
    if [ -z "$here" ]; then
        echo "no MariaDB user $(literal "$user") on this host" >&2
        exit 1
    fi
    there="$(on_target_run user_statements "$user" < /dev/null)"
    if [ "$here" = "$there" ]; then return 0; fi
    printf '%s\n' "$here" | on_target_run target_apply_users "$user"
    there="$(on_target_run user_statements "$user" < /dev/null)"
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
        if unchanged_since_copy "$db" "$(db_sums "$db")"; then
            echo "database $db: no rows changed since the last copy"
        else
            echo "would copy database $db again (rows changed since the last copy)"
        fi
    done
}

mode="${1:-}"
shift || true
case "$mode" in
    sums) db_sums "$1" ;;
    users) target="$2"; users "$1" ;;
    copy) target="$2"; copy "$1" ;;
    final) target="$1"; shift; final "$@" ;;
    preview) target="$1"; shift; preview "$@" ;;
    *) echo "usage: $0 sums DB | users USER TARGET | copy DB TARGET | final TARGET DB..." \
            "| preview TARGET DB..." >&2; exit 2 ;;
esac
