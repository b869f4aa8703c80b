"""Checks that this host can run sandbox machines, and finds the tools they need."""

from __future__ import annotations

import os
from pathlib import Path

from migrate.core.errors import EnvironmentNotReady
from migrate.core.resources import find_tool as find_tool

# Tool -> Debian package that ships it.
REQUIRED_TOOLS: dict[str, str] = {
    "systemd-nspawn": "systemd-container",
    "debootstrap": "debootstrap",
    "ip": "iproute2",
    "ssh-keygen": "openssh-client",
}

DEFAULT_ROOT = Path("/var/lib/migrate/sandbox")


def tool(name: str) -> str:
    """Absolute path of a required executable; EnvironmentNotReady if it is missing."""
    found = find_tool(name)
    if found is None:
        package = REQUIRED_TOOLS.get(name, name)
        raise EnvironmentNotReady(
            f"{name} is not installed",
            hint=f"install it as root: apt-get install {package}",
        )
    return found


def missing_tools() -> list[str]:
    return [name for name in REQUIRED_TOOLS if find_tool(name) is None]


def require_host() -> None:
    """Raise EnvironmentNotReady unless we are root and every sandbox tool is installed."""
    problems: list[str] = []
    if os.geteuid() != 0:
        problems.append("the sandbox needs root (it creates bridges and containers)")
    missing = missing_tools()
    if missing:
        problems.append("missing tools: " + ", ".join(missing))
    if problems:
        packages = " ".join(sorted(set(REQUIRED_TOOLS.values())))
        raise EnvironmentNotReady(
            "this host cannot run sandbox machines: " + "; ".join(problems),
            hint=f"run as root on a Debian host with: apt-get install {packages}",
        )


def sandbox_root(root: str | os.PathLike[str] | None = None) -> Path:
    """Where per-machine files live: the argument, else $MIGRATE_SANDBOX_ROOT, else default."""
    if root is not None:
        return Path(root).absolute()
    from_env = os.environ.get("MIGRATE_SANDBOX_ROOT")
    return Path(from_env).absolute() if from_env else DEFAULT_ROOT
