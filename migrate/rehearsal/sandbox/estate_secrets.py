"""The sandbox's own secrets: made where missing, never overwritten, never shown.

SSH client keys (``source.ssh.key``) are ed25519 keys in OpenSSH format; database
passwords and platform app secrets are random url-safe strings. The secrets folder is
0700 and every file 0600.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

from migrate.core.errors import InvalidInput, Problem
from migrate.core.loader import Estate
from migrate.core.state import MIN_SECRET_CHARS, read_secret_file, secret_name
from migrate.core.state import secrets_dir as secrets_folder
from migrate.rehearsal.sandbox.host import tool
from migrate.rehearsal.sandbox.hostkeys import ensure_client_keypair

KEY, TOKEN = "ssh-key", "token"
TOKEN_CHARS = 2 * MIN_SECRET_CHARS


@dataclass(frozen=True)
class SecretNeed:
    name: str
    kind: str  # ssh-key | token


def needed_secrets(estate: Estate) -> list[SecretNeed]:
    """Every secret the manifests reference, with the kind of value it holds."""
    kinds: dict[str, str] = {}
    for sid in sorted(estate.systems):
        system = estate.systems[sid]
        kinds.setdefault(secret_name(system.source.ssh.key), KEY)
        for database in system.workload.databases:
            kinds.setdefault(secret_name(database.password), TOKEN)
        if system.exchange is not None:
            kinds.setdefault(secret_name(system.exchange.app_secret), TOKEN)
    return [SecretNeed(name, kind) for name, kind in sorted(kinds.items())]


def check_existing_secrets(estate: Estate) -> None:
    """Existing key secrets must be OpenSSH private keys, existing tokens at least
    MIN_SECRET_CHARS long (checked before any change)."""
    folder = secrets_folder(estate)
    problems = []
    for need in needed_secrets(estate):
        path = folder / need.name
        if need.kind == KEY and path.is_file() and public_key_of(path) is None:
            problems.append(Problem(str(path), None, "",
                                    f"secret {need.name} is used as source.ssh.key but is not"
                                    " an unencrypted OpenSSH private key",
                                    "replace it with an ed25519 key (ssh-keygen -t ed25519 -N '')"
                                    " or remove it to let the sandbox make one"))
        elif need.kind == TOKEN and path.is_file() and _too_short(path):
            problems.append(Problem(str(path), None, "",
                                    f"secret {need.name} is shorter than {MIN_SECRET_CHARS}"
                                    " characters: too short to redact reliably and too weak",
                                    "remove it to let the sandbox make one of"
                                    f" {TOKEN_CHARS} characters"))
    if problems:
        raise InvalidInput(problems)


def _too_short(path: Path) -> bool:
    return len(path.read_text(encoding="utf-8", errors="replace").strip()) < MIN_SECRET_CHARS


def public_key_of(private: Path) -> str | None:
    result = subprocess.run([tool("ssh-keygen"), "-y", "-f", str(private)],
                            capture_output=True, text=True, check=False,
                            stdin=subprocess.DEVNULL)
    line = result.stdout.strip()
    return line if result.returncode == 0 and line.startswith("ssh-") else None


def ensure_secrets(estate: Estate) -> list[str]:
    """Make every missing secret; returns the names made (never the values)."""
    folder = secrets_folder(estate)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    made = []
    for need in needed_secrets(estate):
        path = folder / need.name
        if path.exists():
            continue
        if need.kind == KEY:
            ensure_client_keypair(path)
        else:
            write_private(path, secrets.token_urlsafe(48)[:TOKEN_CHARS] + "\n")
        made.append(need.name)
    return made


def write_private(path: Path, text: str) -> None:
    """Create ``path`` 0600 from the first byte; an existing file is an error (kept)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def ensure_token_file(path: Path) -> bool:
    """A random token in ``path`` (0600) unless one is there; True if it was made."""
    if path.exists():
        os.chmod(path, 0o600)
        return False
    write_private(path, secrets.token_urlsafe(48)[:TOKEN_CHARS] + "\n")
    return True


def client_public_key(estate: Estate, name: str) -> str:
    path = secrets_folder(estate) / name
    public = public_key_of(path)
    if public is None:
        raise InvalidInput([Problem(str(path), None, "", f"secret {name} is not an SSH key")])
    return public


def read_token(path: Path) -> str:
    return read_secret_file(path, path.name)
