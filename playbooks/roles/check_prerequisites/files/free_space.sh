#!/bin/bash
# free_space.sh FACTOR MARGIN PATH=BYTES...
# The data moving to each PATH lands on the filesystem that holds PATH (or its nearest
# existing parent: a data volume may be mounted there). Per filesystem: free bytes must be at
# least FACTOR x the bytes landing on it + MARGIN. Prints one line per filesystem
# ("mount free needed"); exits 1 naming the short ones.
set -euo pipefail
factor="$1" margin="$2"
shift 2
declare -A landing=() free=() paths=()
for need in "$@"; do
    path="${need%=*}" bytes="${need##*=}"
    probe="$path"
    while [ ! -e "$probe" ]; do probe="$(dirname "$probe")"; done
    read -r mount avail < <(df --output=target,avail -B1 "$probe" | tail -n 1)
    landing[$mount]=$(( ${landing[$mount]:-0} + bytes ))
    free[$mount]=$avail
    paths[$mount]="${paths[$mount]:+${paths[$mount]}, }$path"
done
short=0
for mount in "${!landing[@]}"; do
    needed=$(python3 -c "import sys; print(int(int(sys.argv[1]) * float(sys.argv[2])) + int(sys.argv[3]))" \
             "${landing[$mount]}" "$factor" "$margin")
    echo "$mount ${free[$mount]} $needed"
    if [ "${free[$mount]}" -lt "$needed" ]; then
        echo "$mount has ${free[$mount]} bytes free, needs $needed for ${paths[$mount]}" \
             "(data x $factor + $margin bytes margin)" >&2
        short=1
    fi
done
exit "$short"
