"""SSH keys: a host key per machine (made on the host) and the operator's client key.

Host key checking always stays on: clients get a known_hosts file written from the
machines' public host keys, so the first connection is already verified.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from pathlib import Path

from migrate.errors import StageFailed
from migrate.sandbox.host import tool
from migrate.sandbox.layout import upper_dir

HOST_KEY = Path("etc/ssh/ssh_host_ed25519_key")


def _keygen(path: Path, comment: str) -> None:
    # An empty passphrase is not a secret; the private key never leaves the file.
    result = subprocess.run(
        [tool("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise StageFailed(f"ssh-keygen failed for {path}: {result.stderr.strip()}")


def generate_host_key(root_dir: Path, hostname: str) -> str:
    """Write a fresh ed25519 host key under ``root_dir`` (a machine's upper dir).

    Returns the public key line (``ssh-ed25519 AAAA... root@hostname``). An existing key
    is kept, so re-creating a machine does not change its identity.
    """
    private = root_dir / HOST_KEY
    public = private.with_name(private.name + ".pub")
    if not (private.exists() and public.exists()):
        private.parent.mkdir(parents=True, exist_ok=True)
        private.unlink(missing_ok=True)
        public.unlink(missing_ok=True)
        _keygen(private, f"root@{hostname}")
    os.chmod(private, 0o600)
    os.chmod(public, 0o644)
    return public.read_text().strip()


def host_public_key(root_dir: Path) -> str:
    """``keytype base64`` of the host key stored under ``root_dir``."""
    public = root_dir / HOST_KEY.with_name(HOST_KEY.name + ".pub")
    try:
        key_type, key = public.read_text().split()[:2]
    except (OSError, ValueError):
        raise StageFailed(
            f"no host key at {public}", hint="create the machine before asking for its key"
        ) from None
    return f"{key_type} {key}"


def known_hosts_entry(address: str, public_key: str) -> str:
    key_type, key = public_key.split()[:2]
    return f"{address} {key_type} {key}"


def write_known_hosts(path: str | os.PathLike[str], entries: Iterable[str]) -> Path:
    """Write a known_hosts file with exactly these lines, atomically."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    temporary.write_text("".join(f"{entry.strip()}\n" for entry in entries))
    os.chmod(temporary, 0o644)
    os.replace(temporary, target)
    return target


def ensure_client_keypair(path: str | os.PathLike[str]) -> tuple[Path, str]:
    """The operator's private key at ``path`` (mode 0600) and its public key line.

    Made once; an existing key is kept (its mode tightened to 0600).
    """
    private = Path(path)
    public = private.with_name(private.name + ".pub")
    if not private.exists():
        private.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        public.unlink(missing_ok=True)
        _keygen(private, "migrate-operator")
    os.chmod(private, 0o600)
    if not public.exists():
        derived = subprocess.run(
            [tool("ssh-keygen"), "-y", "-f", str(private)],
            capture_output=True,
            text=True,
            check=True,
            stdin=subprocess.DEVNULL,
        )
        public.write_text(derived.stdout)
    return private, public.read_text().strip()


def known_hosts_line(name: str, address: str, root: str | os.PathLike[str] | None = None) -> str:
    """The known_hosts line for machine ``name`` reached at ``address``."""
    return known_hosts_entry(address.split("/")[0], host_public_key(upper_dir(name, root)))
