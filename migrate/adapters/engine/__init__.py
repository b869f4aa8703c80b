"""The pinned Pulumi engine: finding it, building it, and the environment to drive it.

Typical use by the provisioning stage::

    pulumi = ensure_engine()                       # builds once into the cache if missing
    env = engine_env(state_dir, passphrase_file)   # PATH, PULUMI_HOME, passphrase file...
    stack = auto.create_or_select_stack(
        stack_name="dev",
        work_dir=str(program_dir),
        opts=auto.LocalWorkspaceOptions(pulumi_command=pulumi_command(pulumi), env_vars=env),
    )

Never use the SDK's own installer of PulumiCommand: it downloads a binary, which cannot work here.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from migrate.adapters.engine.build import (
    Progress,
    build_engine,
    cache_root,
    engine_bin_dir,
    engine_root,
    is_complete,
    refresh_launcher,
    reported_version,
)
from migrate.adapters.engine.version import PULUMI_VERSION
from migrate.core.credentials import check_passphrase_file
from migrate.core.errors import EnvironmentNotReady

if TYPE_CHECKING:
    from pulumi.automation import PulumiCommand

__all__ = [
    "PULUMI_VERSION",
    "cache_root",
    "engine_bin_dir",
    "engine_env",
    "engine_root",
    "ensure_engine",
    "file_backend_url",
    "find_engine",
    "prepare_state_dir",
    "pulumi_command",
]


def _pulumi_on_path() -> Path | None:
    from shutil import which

    found = which("pulumi")
    if found and reported_version(Path(found)) == PULUMI_VERSION:
        return Path(found)
    return None


def find_engine() -> Path | None:
    """The ``pulumi`` executable to use: one on PATH of exactly the pinned version, else the
    complete cached build; None when neither exists."""
    on_path = _pulumi_on_path()
    if on_path is not None:
        return on_path
    if is_complete():
        refresh_launcher()
        return engine_bin_dir() / "pulumi"
    return None


def ensure_engine(build: bool = True, progress: Progress = print) -> Path:
    """The ``pulumi`` executable, building it into the cache first when it is missing."""
    found = find_engine()
    if found is not None:
        return found
    if not build:
        raise EnvironmentNotReady(
            f"the Pulumi engine v{PULUMI_VERSION} is not built",
            hint="run `scripts/build_pulumi.sh` (needs Go and the Go module proxy)",
        )
    return build_engine(progress=progress)


def venv_python() -> Path:
    """The interpreter of the running virtual environment, which has ``migrate`` and
    ``pulumi`` installed (the language host, programs and dynamic providers run under it)."""
    return Path(sys.executable)


def file_backend_url(state_dir: Path) -> str:
    """The embedded default backend: Pulumi's local file backend under the state directory."""
    return f"file://{(Path(state_dir) / 'backend').resolve()}"


def engine_env(
    state_dir: Path,
    passphrase_file: Path | None,
    *,
    engine: Path | None = None,
    backend_url: str | None = None,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The full environment for the Automation API (or a ``pulumi`` subprocess).

    The engine's bin directory comes first on PATH (the CLI finds its language host and the
    dynamic provider plugin there), then the venv's (the plugins start ``python``). The
    passphrase travels as a file name only. The backend defaults to the file backend under
    ``state_dir``; pass ``backend_url`` for any other.
    """
    pulumi = engine or find_engine()
    if pulumi is None:
        raise EnvironmentNotReady(
            f"the Pulumi engine v{PULUMI_VERSION} is not built",
            hint="run `scripts/build_pulumi.sh` (needs Go and the Go module proxy)",
        )
    state_dir = Path(state_dir).resolve()
    python = venv_python()
    env = dict(os.environ if base is None else base)
    env.pop("PULUMI_CONFIG_PASSPHRASE", None)
    search_path = [str(pulumi.parent), str(python.parent)]
    search_path += [p for p in env.get("PATH", "").split(os.pathsep) if p]
    env["PATH"] = os.pathsep.join(dict.fromkeys(search_path))
    env["PULUMI_HOME"] = str(state_dir / "pulumi-home")
    env["PULUMI_SKIP_UPDATE_CHECK"] = "true"
    env["PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"] = "true"
    env["PULUMI_PYTHON_CMD"] = str(python)
    env["PULUMI_BACKEND_URL"] = backend_url or file_backend_url(state_dir)
    if passphrase_file is not None:
        env["PULUMI_CONFIG_PASSPHRASE_FILE"] = str(check_passphrase_file(passphrase_file))
    return env


def prepare_state_dir(state_dir: Path) -> None:
    """Create the directories ``engine_env`` points at (PULUMI_HOME, the file backend), and
    link the built resource plugins into PULUMI_HOME's plugin cache, where the engine (with
    automatic plugin acquisition off) finds them for the version the SDK asks for."""
    from migrate.adapters.engine import provider

    state_dir = Path(state_dir)
    for sub in ("pulumi-home", "backend"):
        (state_dir / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
    provider.install_plugin(state_dir / "pulumi-home")


def pulumi_command(engine: Path | None = None) -> PulumiCommand:
    """A ``PulumiCommand`` bound to the pinned engine (``root`` is the dir above ``bin/``).

    The build stamps the version with the ``-X ...version.Version`` ldflag, so the Automation
    API's version check passes without ``skip_version_check``.
    """
    from pulumi.automation import PulumiCommand
    from semver import VersionInfo

    pulumi = engine or ensure_engine(build=False)
    return PulumiCommand(root=str(pulumi.parent.parent), version=VersionInfo.parse(PULUMI_VERSION))
