"""Modules that short-lived processes import stay light.

Every Pulumi operation on the sandbox starts a dynamic provider host and the stack program,
each a new Python process that imports ``migrate.rehearsal.sandbox.provider``; the estate's
model (pydantic) doubled what that import costs and none of them needs it."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("pydantic", "migrate.core.model", "migrate.core.loader")


def modules_loaded_by(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=60)
    return set(done.stdout.split())


def test_the_sandbox_provider_module_does_not_load_the_estate_model():
    loaded = modules_loaded_by("migrate.rehearsal.sandbox.provider")
    assert "migrate.rehearsal.sandbox.provider" in loaded
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
