"""Names and per-machine paths under the sandbox root (shared by machines and hostkeys)."""

from __future__ import annotations

import os
from pathlib import Path

from migrate.rehearsal.sandbox.host import sandbox_root
from migrate.rehearsal.sandbox.network import IFNAMSIZ, short_name

VETH_PREFIX = "vb-"  # systemd-nspawn names the host side of --network-bridge vb-MACHINE
MACHINE_NAME_MAX = IFNAMSIZ - len(VETH_PREFIX)  # 12

Root = str | os.PathLike[str] | None


def machine_name(name: str) -> str:
    """The nspawn machine name for ``name``: itself if safe and at most 12 chars.

    Longer or unsafe names become a readable prefix plus 4 hex digits of their SHA-256
    (e.g. ``rsj-sbcx-web1-new`` -> ``rsj-sbc-xxxx``), so ``vb-`` + name fits the kernel's
    15-character interface names and nspawn never has to shorten the veth itself.
    """
    return short_name(name, MACHINE_NAME_MAX)


def veth_name(name: str) -> str:
    return VETH_PREFIX + machine_name(name)


def machines_dir(root: Root = None) -> Path:
    return sandbox_root(root) / "machines"


def machine_dir(name: str, root: Root = None) -> Path:
    return machines_dir(root) / machine_name(name)


def upper_dir(name: str, root: Root = None) -> Path:
    return machine_dir(name, root) / "upper"


def spec_file(name: str, root: Root = None) -> Path:
    return machine_dir(name, root) / "machine.json"


def console_log(name: str, root: Root = None) -> Path:
    return machine_dir(name, root) / "console.log"
