"""The 0600 files a moving stage's plays are given instead of secret values: the temporary
migration key, the replication passwords and their verifiers, the database passwords and the
exchange platform's app secret; and the secrets to scrub from what the plays print."""

from __future__ import annotations

import hashlib
import os
import secrets as secrets_module
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from migrate.core import state
from migrate.core.credentials import (
    ensure_client_keypair,
    mariadb_native_hash,
    scram_verifier,
)
from migrate.core.loader import Estate

MIGRATION_KEYS = "migration-keys"


def with_their_lines(secrets: list[str]) -> list[str]:
    """Secrets, plus each long line of a multi-line one (a key shown line by line in a diff or
    a log must be scrubbed too)."""
    lines = [line.strip() for s in secrets if "\n" in s for line in s.splitlines()
             if len(line.strip()) >= 16 and "PRIVATE KEY" not in line]
    return [*secrets, *lines]


def migration_key(state_dir: Path, system_id: str) -> tuple[Path, str]:
    """The temporary per-system key the source uses to push to its target (0600), in the
    estate's state folder."""
    folder = state_dir / MIGRATION_KEYS
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path, public = ensure_client_keypair(folder / system_id)
    return Path(path).absolute(), public


def exchange_vars(estate: Estate, system_id: str) -> dict[str, Any]:
    """What the target needs to reach the exchange platform as this system: the platform URL,
    the app key and the CA bundle, plus the controller path of the secret's 0600 file (the
    play copies the file; the value never becomes a variable)."""
    system = estate.systems[system_id]
    if system.exchange is None:
        return {"exchange": None}
    settings = estate.settings.exchange
    secret_file = state.secrets_dir(estate) / state.secret_name(system.exchange.app_secret)
    state.read_secret(estate, system.exchange.app_secret)  # present, 0600, not empty
    return {"exchange": {"system": system_id, "url": settings.url,
                         "app_key": system.exchange.app_key,
                         "ca_file": str((estate.root / settings.ca_bundle).absolute()),
                         "secret_file": str(secret_file.absolute())}}


def replication_files(state_dir: Path, system: Mapping[str, Any]
                      ) -> dict[str, dict[str, str]]:
    """For each database kept in step by replication: the source's account the target
    replicates as (replication_account), and the 0600 files of its password and of what the
    source stores of it instead (PostgreSQL's SCRAM verifier, MariaDB's mysql_native_password
    hash), made once per system and database and kept in the state folder."""
    found = {}
    folder = state_dir / MIGRATION_KEYS
    for database in system["data"]["databases"]:
        if database["method"] not in STORED_FORM:
            continue
        password_file = folder / f"{system['id']}-{database['name']}.replication"
        verifier_file = password_file.with_suffix(".verifier")
        if not password_file.is_file():
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            _write_private(password_file, secrets_module.token_urlsafe(24))
        password = password_file.read_text().strip()
        salt = hashlib.sha256(f"{system['id']}/{database['name']}/{password}".encode()).digest()
        _write_private(verifier_file, STORED_FORM[database["method"]](password, salt[:16]))
        found[database["name"]] = {"account": replication_account(system["id"],
                                                                  database["name"]),
                                   "password_file": str(password_file.absolute()),
                                   "verifier_file": str(verifier_file.absolute())}
    return found


REPLICATION_FILES = ("password_file", "verifier_file")


def replication_account(system_id: str, database: str) -> str:
    """The source's replication account of one system's database: its own, so that two
    databases on one source host (of one system or two) never share a password. Made from a
    digest, never from the names (a database name is hostile data): lowercase letters, digits
    and "_", 29 characters, a valid unquoted name for PostgreSQL (63) and MariaDB (80, and
    MySQL's 32). A system id holds no "/" (SYSTEM_ID_PATTERN), so "system/database" names
    one pair only."""
    digest = hashlib.sha256(f"{system_id}/{database}".encode()).hexdigest()
    return f"{REPLICATION_ACCOUNT_PREFIX}{digest[:16]}"


# The scripts accept no other account name (playbooks/files/move.sh, move_mariadb.sh).
REPLICATION_ACCOUNT_PREFIX = "migrate_repl_"


# What the source stores of a replication password, by method (from the password and a salt).
STORED_FORM: dict[str, Callable[[str, bytes], str]] = {
    "logical_replication": scram_verifier,
    "binlog_replication": lambda password, _salt: mariadb_native_hash(password),
}


def _write_private(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text + "\n")


def database_password_files(estate: Estate, system_id: str) -> dict[str, str]:
    """Controller paths of each database password's 0600 file, by database name: plays read
    the file into a no_log task's stdin, never into a variable of their own."""
    found = {}
    for database in estate.systems[system_id].workload.databases:
        state.read_secret(estate, database.password)  # present, 0600, not empty
        path = state.secrets_dir(estate) / state.secret_name(database.password)
        found[database.name] = str(path.absolute())
    return found
