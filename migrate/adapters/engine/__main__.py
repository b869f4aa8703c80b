"""``python -m migrate.adapters.engine ACTION``: the project's set-up steps for the Pulumi
engine and the OpenStack provider plugin.

    build             build the engine unless present; print bin/pulumi
    path, root        print the engine's bin/pulumi, or its root
    build-provider    build pulumi-resource-openstack unless present; print its path
    provider-path     print the built plugin's path
    sdk-tokens        print providers/openstack/provider/sdk-tokens.txt for the installed SDK
    pack [--output DIR]            engine and plugin in one archive, with its .sha256 beside
    install ARCHIVE [--sha256 HEX] check the archive's sha256, then unpack it into the cache

An entry point like the CLI: it turns a MigrateError into its exit code.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from migrate.adapters.engine import (
    PULUMI_VERSION,
    engine_root,
    ensure_engine,
    find_engine,
    provider,
)
from migrate.core.errors import MigrateError

ACTIONS = ["build", "path", "root", "build-provider", "provider-path", "sdk-tokens", "pack",
           "install"]


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _engine(action: str) -> int:
    if action == "build":
        print(ensure_engine(build=True, progress=_progress))
        return 0
    pulumi = find_engine()
    if pulumi is None:
        _progress(f"pulumi v{PULUMI_VERSION} is not built under {engine_root()}")
        return 1
    print(pulumi if action == "path" else pulumi.parent.parent)
    return 0


def _provider(args: argparse.Namespace) -> int:
    if args.action == "build-provider":
        print(provider.ensure_provider(build=True, progress=_progress))
    elif args.action == "provider-path":
        print(provider.ensure_provider(build=False))
    elif args.action == "sdk-tokens":
        sys.stdout.write(provider.sdk_tokens_text())
    elif args.action == "pack":
        archive, digest = provider.pack(Path(args.output))
        print(archive)
        _progress(f"sha256 {digest} (in {archive}.sha256); on the site: "
                  f"python -m migrate.adapters.engine install {archive.name}")
    else:
        if args.archive is None:
            _progress("install needs the ARCHIVE made by `python -m migrate.adapters.engine pack`")
            return 2
        for name in provider.install_archive(Path(args.archive), args.sha256):
            _progress(f"installed {provider.cache_root() / name}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m migrate.adapters.engine")
    parser.add_argument("action", choices=ACTIONS, help="see the module's docstring")
    parser.add_argument("archive", nargs="?", help="install: the archive made by pack")
    parser.add_argument("--output", default="dist", help="pack: the directory to write to")
    parser.add_argument("--sha256", help="install: the expected checksum (else ARCHIVE.sha256)")
    args = parser.parse_args(argv)
    try:
        if args.action in ("build", "path", "root"):
            return _engine(args.action)
        return _provider(args)
    except MigrateError as error:
        _progress(f"error: {error.message}")
        if error.hint:
            _progress(f"hint: {error.hint}")
        return error.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
