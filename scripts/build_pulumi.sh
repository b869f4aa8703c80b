#!/bin/sh
# Build the pinned Pulumi engine (CLI + Python language host) from the Go module proxy into
# ${MIGRATE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/migrate}/pulumi/v<X>/bin.
# Does nothing when a complete build (or a `pulumi` of the pinned version on PATH) exists.
# Needs: Go >= 1.26 on PATH (or in /usr/local/go/bin) and the project's venv.
set -eu
repo=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
python=${PYTHON:-$repo/.venv/bin/python}
export PATH="$PATH:/usr/local/go/bin"
exec "$python" -m migrate.adapters.engine build
