"""Credentials `migrate` makes itself, whatever the cloud: SSH client key pairs (the operator's,
the per-system migration keys), the SCRAM-SHA-256 verifiers PostgreSQL stores instead of a
password (and MariaDB's mysql_native_password hashes), and the file that holds the passphrase
of the stacks' secrets (made only for a rehearsal, else the operator's; never readable by
others). Neither the stages, the targets nor the rehearsal own these; all use them from here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import stat
import subprocess
import unicodedata
from pathlib import Path

from migrate.core.errors import EnvironmentNotReady, GuardRefused, StageFailed
from migrate.core.resources import find_tool

SCRAM_ITERATIONS = 4096
PASSPHRASE_ENV = "MIGRATE_PULUMI_PASSPHRASE_FILE"


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


def mariadb_native_hash(password: str) -> str:
    """The hash MariaDB's mysql_native_password stores for ``password`` (``*`` and the hex of
    SHA1(SHA1(password))), so the SQL that creates the account never holds the password."""
    inner = hashlib.sha1(password.encode("utf-8")).digest()
    return "*" + hashlib.sha1(inner).hexdigest().upper()


# ---------------------------------------------------------------- the stacks' passphrase


def check_passphrase_file(passphrase_file: Path) -> Path:
    """The passphrase file must exist and be readable by its owner only."""
    path = Path(passphrase_file).resolve()
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as error:
        raise GuardRefused(
            f"passphrase file {path} does not exist",
            hint="write the stack passphrase into it and `chmod 600` it",
        ) from error
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise GuardRefused(
            f"passphrase file {path} is readable by others (mode {stat.S_IMODE(mode):o})",
            hint=f"chmod 600 {path}",
        )
    return path


def ensure_passphrase_file(state_dir: Path, create: bool) -> Path:
    """The stack secrets passphrase: a 0600 file named by the environment, or the state
    directory's own; made on first use only for the sandbox (a rehearsal's own secret)."""
    named = os.environ.get(PASSPHRASE_ENV)
    path = Path(named) if named else state_dir / "pulumi-passphrase"
    if not path.is_file():
        if not create or named:
            raise EnvironmentNotReady(
                f"no passphrase for the stacks' secrets at {path}",
                f"write it to a 0600 file and point {PASSPHRASE_ENV} at it (CI: from the "
                "CI secret store); never put it on the command line")
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32) + "\n")
    return check_passphrase_file(path)
