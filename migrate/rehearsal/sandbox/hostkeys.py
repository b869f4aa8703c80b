"""SSH keys: a host key per machine (made on the host) and the operator's client key.

Host key checking always stays on: clients get a known_hosts file written from the
machines' public host keys, so the first connection is already verified.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

# the operator's key pair is made like every client key migrate makes (kept importable here)
from migrate.core.credentials import ensure_client_keypair as ensure_client_keypair
from migrate.core.credentials import keygen
from migrate.core.errors import StageFailed
from migrate.rehearsal.sandbox.layout import upper_dir

HOST_KEY = Path("etc/ssh/ssh_host_ed25519_key")


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
        keygen(private, f"root@{hostname}")
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


def known_hosts_line(name: str, address: str, root: str | os.PathLike[str] | None = None) -> str:
    """The known_hosts line for machine ``name`` reached at ``address``."""
    return known_hosts_entry(address.split("/")[0], host_public_key(upper_dir(name, root)))
