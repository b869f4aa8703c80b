"""An instance's ssh host keys as cloud-init prints them to the console at first boot.

Cloud-init's ``ssh_authkey_fingerprints``/``keys_to_console`` modules write::

    -----BEGIN SSH HOST KEY KEYS-----
    ssh-ed25519 AAAAC3... root@name
    -----END SSH HOST KEY KEYS-----

The compute API returns the console (``os-getConsoleOutput``) over the authenticated API, so
keys read from it can be pinned before the first ssh: no trust on first use. The console is
text the guest wrote, so it is parsed strictly: only the last complete block counts, only
known key types with well-formed base64 are taken, anything else in the block is refused.
"""

from __future__ import annotations

from migrate.targets.contract import host_key_line

BEGIN = "-----BEGIN SSH HOST KEY KEYS-----"
END = "-----END SSH HOST KEY KEYS-----"
KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
             "ecdsa-sha2-nistp521", "ssh-rsa")


class ConsoleKeysError(ValueError):
    """The console holds a key block that is not what cloud-init writes."""


def host_keys_from_console(text: str) -> list[str]:
    """``type base64`` lines of the last complete host key block; [] when none is there yet."""
    block = _last_block(text.replace("\r", "").splitlines())
    return [_key_line(line) for line in block if line.strip()] if block is not None else []


def _last_block(lines: list[str]) -> list[str] | None:
    found, current = None, None
    for line in lines:
        stripped = line.strip()
        if stripped == BEGIN:
            current = []
        elif stripped == END and current is not None:
            found, current = current, None
        elif current is not None:
            current.append(stripped)
    return found


def _key_line(line: str) -> str:
    key_type = line.split()[0] if line.split() else ""
    if key_type not in KEY_TYPES:
        raise ConsoleKeysError(f"not a host key line: {line[:80]!r}")
    try:
        return host_key_line(line)
    except ValueError as error:
        raise ConsoleKeysError(f"{key_type} key is not well-formed: {error}") from None
