"""Where an estate's state lives, and its journal: shared by every stage.

Stages import this module, never each other or the pipeline.
"""

from __future__ import annotations

import os
from pathlib import Path

from migrate.errors import EnvironmentNotReady
from migrate.journal import Journal
from migrate.loader import Estate
from migrate.model import SECRET_PREFIX

STATE_DIR_NAME = ".migrate"


def state_dir(estate: Estate) -> Path:
    """Where an estate's state lives: Pulumi backend, journal, plan, reports, artifacts."""
    override = os.environ.get("MIGRATE_STATE_DIR")
    return Path(override) if override else estate.root / STATE_DIR_NAME


def estate_inputs(estate: Estate) -> dict:
    return {"migrate.yaml": estate.settings_doc.digest, "systems": estate.digests()}


def secret_values(estate: Estate) -> list[str]:
    """Every secret of the estate's secrets folder, for redaction (never for printing)."""
    folder = estate.root / estate.settings.secrets.dir
    if not folder.is_dir():
        return []
    values = []
    for path in sorted(folder.iterdir()):
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace").strip()
            if len(text) >= 6:
                values.append(text)
    return values


def journal_for(estate: Estate) -> Journal:
    return Journal(state_dir(estate), estate.settings.estate, secret_values(estate))


def read_secret(estate: Estate, reference: str) -> str:
    """The value behind ``secret://NAME``: the estate's secrets folder's file NAME (0600)."""
    name = reference.removeprefix(SECRET_PREFIX)
    path = estate.root / estate.settings.secrets.dir / name
    try:
        mode = path.stat().st_mode
        value = path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise EnvironmentNotReady(f"secret {reference} cannot be read from {path}: "
                                  f"{error.strerror}",
                                  "create the file (mode 0600) holding the secret") from None
    if mode & 0o077:
        raise EnvironmentNotReady(f"secret file {path} is readable by others",
                                  f"chmod 600 {path}")
    if not value:
        raise EnvironmentNotReady(f"secret file {path} is empty", "write the secret into it")
    return value
