#!/usr/bin/env bash
# Install the Debian packages the sandbox and the tests need. Idempotent: installs only what
# is missing. Needs root (CI and the README's commands run as root): without it, or when a
# package cannot be installed, it says what is missing and fails.
set -euo pipefail
packages=(
  systemd-container   # systemd-nspawn: sandbox machines
  debootstrap         # sandbox base images
  rsync               # file transfer (host side of tests and benchmarks)
  iproute2            # bridges, veths, policy routing
  openssh-client      # ssh with host key checking; ssh-keygen
  postgresql          # host-side tests of the legacy application run a throwaway cluster
  python3-psycopg2    # ...with the app under Debian's python3, as inside the machines
  chromium            # runbook and report pages checked in a real headless browser
  fonts-noto-cjk      # ...with Chinese text rendered
  apt-cacher-ng       # the sandbox cloud's internal package mirror (migrate/rehearsal/sandbox/mirror.py)
)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "host packages: all present"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "host packages missing, and installing them needs root: ${missing[*]}" >&2
  exit 1
fi
echo "host packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# policy-rc.d: do not start the packaged PostgreSQL service; tests start their own clusters
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
trap 'rm -f /usr/sbin/policy-rc.d' EXIT
apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
# migrate runs its own apt-cacher-ng per sandbox, bound to a bridge address; the packaged
# service (listening on every address) stays off.
if [[ " ${missing[*]} " == *" apt-cacher-ng "* ]]; then
  update-rc.d apt-cacher-ng disable > /dev/null 2>&1 || true
  systemctl disable --quiet apt-cacher-ng.service > /dev/null 2>&1 || true
fi
echo "host packages: done"
