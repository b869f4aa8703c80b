"""``python -m migrate.engine build|path``: the project's set-up step for the Pulumi engine.

An entry point like the CLI: it turns a MigrateError into its exit code.
"""

from __future__ import annotations

import argparse
import sys

from migrate.engine import PULUMI_VERSION, engine_root, ensure_engine, find_engine
from migrate.errors import MigrateError


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m migrate.engine")
    parser.add_argument(
        "action",
        choices=["build", "path", "root"],
        help="build: build the engine unless present; path: print bin/pulumi; root: its root",
    )
    args = parser.parse_args(argv)
    try:
        if args.action == "build":
            pulumi = ensure_engine(build=True, progress=_progress)
            print(pulumi)
            return 0
        pulumi = find_engine()
        if pulumi is None:
            _progress(f"pulumi v{PULUMI_VERSION} is not built under {engine_root()}")
            return 1
        print(pulumi if args.action == "path" else pulumi.parent.parent)
        return 0
    except MigrateError as error:
        _progress(f"error: {error.message}")
        if error.hint:
            _progress(f"hint: {error.hint}")
        return error.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
