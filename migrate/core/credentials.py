"""Credentials `migrate` makes itself, whatever the cloud: SSH client key pairs (the operator's,
the per-system migration keys) and the SCRAM-SHA-256 verifiers PostgreSQL stores instead of a
password. Neither the stages nor the rehearsal own these; both use them from here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import subprocess
import unicodedata
from pathlib import Path

from migrate.adapters.processes import find_tool
from migrate.core.errors import EnvironmentNotReady, StageFailed

SCRAM_ITERATIONS = 4096


def ssh_keygen() -> str:
    """The path of ssh-keygen; EnvironmentNotReady when it is not installed."""
    found = find_tool("ssh-keygen")
    if found is None:
        raise EnvironmentNotReady("ssh-keygen is not installed",
                                  hint="install it as root: apt-get install openssh-client")
    return found


def keygen(path: Path, comment: str) -> None:
    """A new ed25519 key pair at ``path`` and ``path``.pub."""
    # An empty passphrase is not a secret; the private key never leaves the file.
    result = subprocess.run(
        [ssh_keygen(), "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise StageFailed(f"ssh-keygen failed for {path}: {result.stderr.strip()}")


def ensure_client_keypair(path: str | os.PathLike[str]) -> tuple[Path, str]:
    """The private key at ``path`` (mode 0600) and its public key line.

    Made once; an existing key is kept (its mode tightened to 0600).
    """
    private = Path(path)
    public = private.with_name(private.name + ".pub")
    if not private.exists():
        private.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        public.unlink(missing_ok=True)
        keygen(private, "migrate-operator")
    os.chmod(private, 0o600)
    if not public.exists():
        derived = subprocess.run([ssh_keygen(), "-y", "-f", str(private)], capture_output=True,
                                 text=True, check=True, stdin=subprocess.DEVNULL)
        public.write_text(derived.stdout)
    return private, public.read_text().strip()


def _saslprep(password: str) -> bytes:
    # PostgreSQL applies SASLprep; NFKC is its core for the passwords people use.
    return unicodedata.normalize("NFKC", password).encode("utf-8")


def scram_verifier(password: str, salt: bytes, iterations: int = SCRAM_ITERATIONS) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for ``password`` (RFC 5802/7677), so
    the SQL that creates the role never holds the password itself."""
    salted = hashlib.pbkdf2_hmac("sha256", _saslprep(password), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = base64.b64encode
    return (f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}$"
            f"{b64(stored_key).decode()}:{b64(server_key).decode()}")
