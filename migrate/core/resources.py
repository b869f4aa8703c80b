"""Where the project's shipped folders are: ``templates/``, ``playbooks/``, ``stacks/`` and
``providers/``; and where the programs it may start are (``find_tool``).

In a checkout they are top-level folders next to the ``migrate`` package. A wheel carries a
copy of each under ``migrate/_shipped/<name>`` (placed there at build time by ``setup.py``;
the sdist carries the top-level folders). The one lookup: the installed copy when it is there,
else the checkout's folder. Overrides (``MIGRATE_STACKS_DIR``) are applied by their callers.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # migrate/
SHIPPED_DIR = PACKAGE_DIR / "_shipped"
CHECKOUT_DIR = PACKAGE_DIR.parent
# the folders setup.py copies into the wheel (keep the two lists the same)
NAMES = ("templates", "playbooks", "stacks", "providers")
# Non-login root shells may lack the sbin directories on PATH.
TOOL_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin")


def folder(name: str) -> Path:
    """The shipped folder ``name``: the installed copy when present, else the checkout's."""
    if name not in NAMES:
        raise ValueError(f"not a shipped folder: {name!r} (one of {', '.join(NAMES)})")
    installed = SHIPPED_DIR / name
    return installed if installed.is_dir() else CHECKOUT_DIR / name


def find_tool(name: str) -> str | None:
    """Absolute path of an executable, looking in PATH and then the sbin directories."""
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join(TOOL_DIRS))
