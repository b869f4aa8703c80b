#!/bin/bash
# owners_on_target.sh TARGET PATH...: every owner and group of the files at and under each
# PATH here has its name on TARGET. rsync copies owners by name (a uid may differ between the
# hosts: packages installed in another order), but gives a file whose owner's name TARGET
# lacks this host's number, silently: someone else's there, or no one's. An owner with no
# name here is a bare number, copied as it is. Prints what TARGET lacks and fails, else
# nothing.
set -euo pipefail
target="$1"
shift
[ "$#" -gt 0 ] || exit 0
listed="$(find "$@" -printf 'passwd %u\ngroup %g\n')"
names="$(LC_ALL=C sort -u <<<"$listed" | grep -Ev '^[a-z]+ [0-9]+$' || true)"
[ -n "$names" ] || exit 0
# names read on this host are data: sent as lines on stdin, one argument each there
check='while read -r db name; do getent "$db" -- "$name" > /dev/null || echo "$db $name"; done'
# an ssh failure exits 255, which Ansible would report as its own connection to this host
if ! missing="$($MIGRATE_SSH "root@$target" "$check" <<<"$names")"; then
    echo "could not ask $target over the migration ssh which owners it has" >&2
    exit 1
fi
if [ -n "$missing" ]; then
    echo "the target has no $(sed 's/^passwd /user /' <<<"$missing" | paste -sd, - | sed 's/,/, /g'):" \
         "owners of files copied there (under $*), which would get this host's numbers;" \
         "declare the package that makes the account in the instance's packages, or create" \
         "it on the target before the move" >&2
    exit 1
fi
