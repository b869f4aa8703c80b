#!/bin/bash
# copy_accounts.sh TARGET UNIT...: the users and groups the units run as on this host (their
# User=, Group= and SupplementaryGroups=, read with systemctl show; DynamicUser= units need
# none), created on TARGET with this host's uid and gid where they are missing. An account
# that exists on TARGET is left as it is; a missing one whose uid or gid another account
# holds there gets a free system id instead, and says so (files are copied with their
# owners by name, so they follow the account, whatever its number).
# Prints "changed" when an account was created on TARGET, else "unchanged".
set -euo pipefail -o noglob  # names are split on spaces below, never expanded as patterns
target="$1"
shift
property() { systemctl show --property="$2" --value -- "$1"; }
declare -A groups=() users=()
for unit in "$@"; do
    [ "$(property "$unit" DynamicUser)" = yes ] && continue
    user="$(property "$unit" User)"
    group="$(property "$unit" Group)"
    for name in $group $(property "$unit" SupplementaryGroups); do groups[$name]=1; done
    if [ -n "$user" ] && [ "$user" != root ]; then
        users[$user]=1
        entry="$(getent passwd -- "$user")" || { echo "user $user of $unit is not on this host" >&2; exit 1; }
        primary="$(getent group -- "$(cut -d: -f4 <<<"$entry")" | cut -d: -f1)"
        [ -z "$primary" ] || groups[$primary]=1
    fi
done
accounts=""
for name in "${!groups[@]}"; do
    [ "$name" = root ] && continue
    entry="$(getent group -- "$name")" || { echo "group $name is not on this host" >&2; exit 1; }
    accounts+="G:$(cut -d: -f1,3 <<<"$entry")"$'\n'
done
for name in "${!users[@]}"; do  # U:NAME:UID:PRIMARY GROUP'S NAME:GECOS:HOME:SHELL
    IFS=: read -r _ _ uid gid gecos home shell <<<"$(getent passwd -- "$name")"
    accounts+="U:$name:$uid:$(getent group -- "$gid" | cut -d: -f1):$gecos:$home:$shell"$'\n'
done
if [ -z "$accounts" ]; then
    echo unchanged
    exit 0
fi
# Groups before users (a user's primary group must exist); each line: KIND:NAME:ID[:...].
create="$(cat <<'SH'
set -euo pipefail
changed=unchanged
taken() { getent "$1" -- "$2" | cut -d: -f1 || true; }  # who holds an id here, if anyone
while IFS=: read -r kind name id group gecos home shell; do
    case "$kind" in
    G)  getent group -- "$name" >/dev/null && continue
        owner="$(taken group "$id")"
        if [ -z "$owner" ]; then
            groupadd --gid "$id" -- "$name"
        else
            groupadd --system -- "$name"
            echo "group $name: gid $id is $owner's here, got $(getent group -- "$name" | cut -d: -f3)"
        fi ;;
    U)  getent passwd -- "$name" >/dev/null && continue
        owner="$(taken passwd "$id")"
        if [ -z "$owner" ]; then
            set -- --uid "$id"
        else
            set -- --system
            echo "user $name: uid $id is $owner's here, a free system uid is given"
        fi
        useradd "$@" --no-create-home --gid "$group" --comment "$gecos" \
            --home-dir "$home" --shell "$shell" -- "$name" ;;
    *)  continue ;;
    esac
    changed=changed
done
echo "$changed"
SH
)"
sort <<<"$accounts" | $MIGRATE_SSH "root@$target" "bash -c $(printf %q "$create")"
