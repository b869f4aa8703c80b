"""The journal's signing key (Ed25519) and who the operator is.

The private key lives outside the estate's state folder, one per estate id: the file named by
``MIGRATE_SIGNING_KEY``, else ``MIGRATE_KEY_DIR/<estate id>.pem``, else
``$XDG_CONFIG_HOME/migrate/keys/<estate id>.pem`` (``~/.config`` by default). It is made,
mode 0600, when a journal begins; whoever writes the journal afterwards needs the same file.
Whoever holds the state folder alone (a backup, a copy handed over) cannot re-sign it.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from migrate.core.errors import EnvironmentNotReady, InvalidInput, Problem

KEY_PREFIX = "ed25519:"
OPERATOR_ENV = "MIGRATE_OPERATOR"
OPERATOR_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,80}")


def config_home() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "migrate"


def state_home() -> Path:
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "migrate"


def key_path(estate_id: str) -> Path:
    named = os.environ.get("MIGRATE_SIGNING_KEY")
    if named:
        return Path(named)
    folder = os.environ.get("MIGRATE_KEY_DIR")
    return (Path(folder) if folder else config_home() / "keys") / f"{estate_id}.pem"


def refuse_key_inside(path: Path, state_dir: Path) -> None:
    """A key kept beside the journal protects nothing: whoever can edit one can re-sign."""
    if path.resolve().is_relative_to(state_dir.resolve()):
        raise EnvironmentNotReady(
            f"the journal's signing key {path} is inside the state folder {state_dir}",
            hint="keep it outside the estate: unset MIGRATE_SIGNING_KEY/MIGRATE_KEY_DIR or "
                 "point them at ~/.config/migrate/keys")


def load_or_make_key(path: Path) -> Ed25519PrivateKey:
    """The key at ``path``; a new one written there (0600, exclusively) when there is none."""
    try:
        return _load_or_make_key(path)
    except OSError as error:
        raise EnvironmentNotReady(f"the journal's signing key cannot be made at {path}: "
                                  f"{error.strerror}",
                                  hint="make the folder writable, or set MIGRATE_KEY_DIR (or "
                                       "MIGRATE_SIGNING_KEY) outside the estate") from None


def _load_or_make_key(path: Path) -> Ed25519PrivateKey:
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            return load_key(path)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        return key
    return load_key(path)


def load_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as error:
        raise EnvironmentNotReady(f"the journal's signing key {path} cannot be read: {error}",
                                  hint="restore the key file (PEM, PKCS#8, Ed25519)") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise EnvironmentNotReady(f"{path} is not an Ed25519 key",
                                  hint="the journal is signed with Ed25519 keys only")
    return key


def public_text(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return KEY_PREFIX + base64.b64encode(raw).decode("ascii")


def public_from_text(text: str) -> Ed25519PublicKey | None:
    if not isinstance(text, str) or not text.startswith(KEY_PREFIX):
        return None
    try:
        raw = base64.b64decode(text.removeprefix(KEY_PREFIX), validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        return None


def key_id(public: str) -> str:
    """A short, stable name for a public key: sha256 of its text form, first 16 hex."""
    return "sha256:" + hashlib.sha256(public.encode("ascii")).hexdigest()[:16]


def public_pem(public: str) -> str:
    key = public_from_text(public)
    if key is None:
        raise ValueError(f"not an ed25519 public key: {public!r}")
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def read_public_file(path: Path) -> str:
    """A public key given to ``audit verify --public-key``: PEM or the journal's text form."""
    text = path.read_text(encoding="utf-8").strip()
    if text.startswith(KEY_PREFIX):
        return text
    try:
        key = serialization.load_pem_public_key(text.encode("ascii"))
    except ValueError as error:
        raise InvalidInput([Problem(str(path), None, "", f"not a public key: {error}")]) from None
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidInput([Problem(str(path), None, "", "not an Ed25519 public key")])
    return public_text(key)


def sign(key: Ed25519PrivateKey, purpose: str, digest: str) -> str:
    return base64.b64encode(key.sign(signed_message(purpose, digest))).decode("ascii")


def signature_ok(public: Ed25519PublicKey, purpose: str, digest: str, signature: object) -> bool:
    if not isinstance(signature, str):
        return False
    try:
        raw = base64.b64decode(signature, validate=True)
        public.verify(raw, signed_message(purpose, digest))
    except (InvalidSignature, ValueError):
        return False
    # base64 has spare bits: only the one spelling of a signature counts, so no byte of a
    # signed line can change unnoticed
    return base64.b64encode(raw).decode("ascii") == signature


def signed_message(purpose: str, digest: str) -> bytes:
    """What is signed: a purpose label, so an entry's signature can never pass for a
    checkpoint's, and the hex digest (docs/journal-format.md)."""
    return f"migrate-{purpose}-v2:{digest}".encode("ascii")


def operator_name(given: str | None = None) -> str | None:
    """Who is operating: ``given``, else MIGRATE_OPERATOR, else the first line of
    ``~/.config/migrate/operator``; None when nobody named themselves."""
    name = given or os.environ.get(OPERATOR_ENV)
    if not name:
        configured = config_home() / "operator"
        if configured.is_file():
            lines = configured.read_text(encoding="utf-8").splitlines()
            name = lines[0] if lines else None
    name = (name or "").strip()
    if not name:
        return None
    if not OPERATOR_NAME.fullmatch(name):
        raise InvalidInput([Problem(OPERATOR_ENV, None, "", "the operator's name must be 1 to "
                                    "80 printable characters", "e.g. 张伟 (市大数据局运维)")])
    return name
