#!/bin/bash
# replication_tunnel.sh: the replication tunnel of one source host, run there by the plays.
# The target's subscription (logical_replication) or replica (binlog_replication) reaches this
# host's database through this host's ssh to its target: ssh -R forwards a port on the
# target's loopback to the database's port on this host's loopback, encrypted and
# authenticated by the migration key and the target's checked host key. No database port is
# opened between the two hosts, and the database sees its replica connect from 127.0.0.1.
#
#   replication_tunnel.sh open UNIT TARGET PORT:TO...   the unit UNIT (a file in
#                     /etc/systemd/system, enabled: a reboot of this host does not end the
#                     replication) running "$MIGRATE_SSH -f -N -R 127.0.0.1:PORT:127.0.0.1:TO...
#                     root@TARGET", restarted whenever the connection drops; returns once
#                     every forward listens on the target (ssh -f waits for them with
#                     ExitOnForwardFailure), else fails with ssh's last words, the unit removed
#   replication_tunnel.sh close UNIT                     the unit stopped, disabled, removed
#
# $MIGRATE_SSH is the tunnel's ssh command (group_vars: migrate_ssh_tunnel). It goes into a
# unit file, so each of its words must be plain (no quote, space, "%", "$" or "\"); it holds
# no secret (the key is a path), nor does anything else here.
# Prints "changed" when it changed something.
set -euo pipefail
UNIT_DIR=/etc/systemd/system
START_TIMEOUT_S=60  # ConnectTimeout and the unit's TimeoutStartSec are shorter

checked_unit() {
    if ! [[ "$1" =~ ^migrate-[a-z0-9-]+\.service$ ]]; then
        echo "unit name '$1' is not a replication tunnel's (migrate-....service)" >&2
        exit 2
    fi
}

# The unit's ExecStart: the ssh command's words (the first one as its absolute path), one
# -R per forward PORT:TO, the target.
exec_line() {  # exec_line TARGET PORT:TO...
    local target="$1" word line="" forward
    local -a words
    shift
    if ! [[ "$target" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]]; then
        echo "target '$target' is not an IPv4 address" >&2
        exit 2
    fi
    read -ra words <<< "${MIGRATE_SSH:-}"
    if [ "${#words[@]}" -eq 0 ] || [ "$#" -eq 0 ]; then
        echo "no ssh command (MIGRATE_SSH) or no forward to open" >&2
        exit 2
    fi
    for word in "${words[@]}"; do
        if ! [[ "$word" =~ ^[A-Za-z0-9_./=:@,+-]+$ ]]; then
            echo "ssh command word '$word' does not fit a unit file" >&2
            exit 2
        fi
    done
    words[0]="$(command -v -- "${words[0]}")" || { echo "${words[0]} is not installed" >&2; exit 2; }
    line="${words[*]} -f -N"
    for forward in "$@"; do
        if ! [[ "$forward" =~ ^([1-9][0-9]{0,4}):([1-9][0-9]{0,4})$ ]] \
            || [ "${BASH_REMATCH[1]}" -gt 65535 ] || [ "${BASH_REMATCH[2]}" -gt 65535 ]; then
            echo "forward '$forward' is not PORT:TO" >&2
            exit 2
        fi
        line+=" -R 127.0.0.1:${BASH_REMATCH[1]}:127.0.0.1:${BASH_REMATCH[2]}"
    done
    printf '%s root@%s' "$line" "$target"
}

unit_text() {  # unit_text TARGET PORT:TO... (run in $(...): bash clears -e there)
    local exec
    exec="$(exec_line "$@")" || return
    cat <<EOF
# Written by migrate (replication_tunnel.sh); removed when the replication ends.
[Unit]
Description=migrate replication tunnel to $1 (ssh)
After=network-online.target
StartLimitIntervalSec=0

[Service]
Type=forking
ExecStart=$exec
Restart=always
RestartSec=5
TimeoutStartSec=30

[Install]
WantedBy=multi-user.target
EOF
}

open_tunnel() {  # open_tunnel UNIT TARGET PORT:TO...
    local unit="$1" file text verb=""
    shift
    checked_unit "$unit"
    file="$UNIT_DIR/$unit"
    text="$(unit_text "$@")"
    if [ ! -e "$file" ] || [ "$(cat -- "$file")" != "$text" ]; then
        printf '%s\n' "$text" > "$file.tmp"
        chmod 0644 "$file.tmp"
        mv -f -- "$file.tmp" "$file"
        systemctl daemon-reload
        verb=restart
    elif ! systemctl is-active --quiet -- "$unit"; then
        verb=restart  # also out of a restart loop, waiting for its next try
    fi
    if ! systemctl is-enabled --quiet -- "$unit"; then
        systemctl enable --quiet -- "$unit"
        verb="${verb:-enabled}"
    fi
    if [ "$verb" = restart ] && ! timeout "$START_TIMEOUT_S" systemctl restart -- "$unit"; then
        echo "the replication tunnel to $1 did not open; its ssh said:" >&2
        journalctl --unit="$unit" --lines=6 --no-pager --output=cat >&2 || true
        close_tunnel "$unit" > /dev/null
        exit 1
    fi
    [ -z "$verb" ] || echo changed
}

close_tunnel() {  # close_tunnel UNIT
    local unit="$1" file changed=""
    checked_unit "$unit"
    file="$UNIT_DIR/$unit"
    if systemctl is-active --quiet -- "$unit" || [ "$(systemctl show --property=ActiveState \
            --value -- "$unit")" = activating ]; then
        systemctl stop -- "$unit"
        changed=changed
    fi
    if [ -e "$file" ]; then
        systemctl disable --quiet -- "$unit"
        rm -f -- "$file"
        systemctl daemon-reload
        changed=changed
    fi
    systemctl reset-failed -- "$unit" 2> /dev/null || true
    [ -z "$changed" ] || echo changed
}

mode="${1:-}"
shift || true
case "$mode" in
    open) open_tunnel "$@" ;;
    close) close_tunnel "$@" ;;
    *) echo "usage: $0 open UNIT TARGET PORT:TO... | close UNIT" >&2; exit 2 ;;
esac
