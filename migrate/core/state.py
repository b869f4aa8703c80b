"""Where an estate's state lives, and its journal: shared by every stage.

Stages import this module (core is below them), never each other or the orchestration.
"""

from __future__ import annotations

import os
from pathlib import Path

from migrate.core.errors import EnvironmentNotReady
from migrate.core.journal import Journal
from migrate.core.loader import Estate
from migrate.core.model import SECRET_PREFIX

STATE_DIR_NAME = ".migrate"
MIN_SECRET_CHARS = 16


def state_dir(estate: Estate) -> Path:
    """Where an estate's state lives: Pulumi backend, journal, plan, reports, artifacts."""
    override = os.environ.get("MIGRATE_STATE_DIR")
    return Path(override) if override else estate.root / STATE_DIR_NAME


def estate_inputs(estate: Estate) -> dict:
    return {"migrate.yaml": estate.settings_doc.digest, "systems": estate.digests()}


def secret_values(estate: Estate) -> list[str]:
    """Every secret of the estate's secrets folder, for redaction (never for printing)."""
    folder = secrets_dir(estate)
    if not folder.is_dir():
        return []
    values = []
    for path in sorted(folder.iterdir()):
        # secret://NAME never starts with a dot: .gitignore and the like are no secrets
        if path.is_file() and not path.name.startswith("."):
            text = path.read_text(encoding="utf-8", errors="replace").strip()
            refuse_short_secret(text, path, path.name)
            values.append(text)
    return values


def refuse_short_secret(value: str, path: Path, label: str) -> None:
    """A secret shorter than MIN_SECRET_CHARS is an error: guessable, and its value turns
    up in ordinary text too often for redaction by value to keep it out of the logs."""
    if len(value) < MIN_SECRET_CHARS:
        raise EnvironmentNotReady(
            f"secret {label} ({path}) is shorter than {MIN_SECRET_CHARS} characters: too short "
            "to redact reliably and too weak",
            hint=f"put a random value of at least {MIN_SECRET_CHARS} characters in {path} "
                 "(and where the secret is used); the sandbox makes 32")


def journal_for(estate: Estate) -> Journal:
    return Journal(state_dir(estate), estate.settings.estate, secret_values(estate))


def secrets_dir(estate: Estate) -> Path:
    """The folder ``secret://NAME`` reads from (``secrets.dir`` of migrate.yaml)."""
    return estate.root / estate.settings.secrets.dir


def secret_name(reference: str) -> str:
    return reference.removeprefix(SECRET_PREFIX)


def read_secret_file(path: Path, label: str) -> str:
    """The one way a secret is read (trailing newline dropped, nothing else), so every
    stage signs and logs in with the same value. Errors name the file, never the value."""
    try:
        value = path.read_text(encoding="utf-8").rstrip("\r\n")
    except FileNotFoundError:
        raise EnvironmentNotReady(f"secret {label} is missing: no file {path}",
                                  hint=f"write the secret into {path} (mode 0600) and run "
                                       "again") from None
    except OSError as error:
        raise EnvironmentNotReady(f"secret {label} cannot be read from {path}: "
                                  f"{error.strerror}",
                                  hint="the file must be readable by this user") from None
    except UnicodeDecodeError:
        raise EnvironmentNotReady(f"secret {label} in {path} is not UTF-8 text",
                                  hint="write the secret into the file as text") from None
    if not value:
        raise EnvironmentNotReady(f"secret {label} is empty ({path})",
                                  hint="write the secret into the file")
    refuse_short_secret(value, path, label)
    return value


def read_secret_in(folder: Path, reference: str) -> str:
    """The value behind ``secret://NAME``: file NAME of ``folder``."""
    return read_secret_file(folder / secret_name(reference), reference)


def read_secret(estate: Estate, reference: str) -> str:
    """The value behind ``secret://NAME`` in the estate's secrets folder, which must be 0600."""
    path = secrets_dir(estate) / secret_name(reference)
    if path.is_file() and path.stat().st_mode & 0o077:
        raise EnvironmentNotReady(f"secret file {path} is readable by others",
                                  f"chmod 600 {path}")
    return read_secret_in(secrets_dir(estate), reference)
