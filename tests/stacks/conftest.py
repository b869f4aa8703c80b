"""Load a stack program's modules from stacks/<target>/ for tests under Pulumi's mocks."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

STACKS = Path(__file__).resolve().parent.parent.parent / "stacks"
PROGRAM_MODULES = ("network", "security", "compute")


@pytest.fixture
def program_modules():
    """Import network/security/compute of one program; forget them afterwards, so the
    programs of other targets (same module names) load cleanly in other tests."""

    def load(target: str) -> dict:
        folder = str(STACKS / target)
        sys.path.insert(0, folder)
        for name in PROGRAM_MODULES:
            sys.modules.pop(name, None)
        return {name: importlib.import_module(name) for name in PROGRAM_MODULES}

    yield load
    for name in PROGRAM_MODULES:
        sys.modules.pop(name, None)
    sys.path[:] = [p for p in sys.path if not p.startswith(str(STACKS))]
