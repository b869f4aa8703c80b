#!/bin/bash
# sync_database.sh sums DB          per-table "schema.table rows checksum" of DB on this host
# sync_database.sh copy DB TARGET   pg_dump -Fc over ssh ($MIGRATE_SSH) into pg_restore
#                                   --create on TARGET unless both sides hold the same rows;
#                                   prints "changed" after a copy, else "unchanged"
set -euo pipefail

as_postgres() { runuser -u postgres -- "$@"; }

db_sums() {
    as_postgres psql -XAt -v ON_ERROR_STOP=1 -d "$1" -c "
        SELECT format('SELECT %L, count(*), coalesce(sum((''x'' || substr(md5(t::text), 1, 16))::bit(64)::bigint), 0)::text FROM %I.%I AS t;',
                      schemaname || '.' || tablename, schemaname, tablename)
        FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')
        ORDER BY schemaname, tablename" \
    | as_postgres psql -XAt -F ' ' -v ON_ERROR_STOP=1 -d "$1"
}

remote() { $MIGRATE_SSH "root@$target" "$@"; }

copy_database() {
    local here there
    here="$(db_sums "$db")"
    there="$(remote "bash -s -- sums $(printf %q "$db")" < "$0" || true)"
    if [ -n "$here" ] && [ "$here" = "$there" ]; then
        echo unchanged
        return 0
    fi
    remote "runuser -u postgres -- dropdb --if-exists --force $(printf %q "$db")"
    as_postgres pg_dump -Fc -d "$db" \
        | remote "runuser -u postgres -- pg_restore --create --exit-on-error -d postgres"
    there="$(remote "bash -s -- sums $(printf %q "$db")" < "$0")"
    if [ "$here" != "$there" ]; then
        echo "database $db differs on $target after the copy" >&2
        exit 1
    fi
    echo changed
}

case "$1" in
    sums) db_sums "$2" ;;
    copy) db="$2" target="$3"; copy_database ;;
    *) echo "usage: $0 sums DB | copy DB TARGET" >&2; exit 2 ;;
esac
