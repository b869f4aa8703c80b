"""How `migrate` reaches an estate's source hosts: which host keys it trusts, which
addresses it may connect to, and an SSH session (paramiko) that checks the host key.

One place decides which known_hosts file holds the source hosts' keys
(``source_known_hosts``): the estate's own file (``sources.known_hosts`` of migrate.yaml)
when set, else the one the estate's cloud target keeps (the sandbox's, which ``sandbox up``
writes). Every stage that logs in to a source (the inventories of the plays, discovery,
trust) reads it from here.

Host key checking is never off: a session loads exactly that file (never the user's own
files, never an agent), and a key that is unknown or differs from the recorded one is
refused (a ``RejectPolicy``; nothing is ever added on the fly).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import shlex
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import paramiko

from migrate.core.errors import (
    HostKeyChanged,
    HostKeyUnknown,
    InvalidInput,
    MigrateError,
    Problem,
    StageFailed,
)
from migrate.core.loader import Estate, load_estate_partially
from migrate.core.validate import check_estate
from migrate.targets.context import Context

CONNECT_TIMEOUT = 10.0
COMMAND_TIMEOUT = 300.0
# A target's key checked before a stage's first play: a host slower than this is left to the
# play, as one that does not answer is.
PINNED_KEY_TIMEOUT = 3.0
# known_hosts key types -> the host key algorithms that negotiate them
KEY_ALGORITHMS = {
    "ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256"),
}


def open_estate_for_sources(path: str | Path) -> Estate:
    """Load and validate an estate like every command, except that it may have no system
    manifest yet: trust and discovery are how the first ones are written."""
    loaded = load_estate_partially(path)
    problems = [p for p in loaded.problems if not p.message.startswith("no system manifests")]
    if problems or loaded.estate is None:
        raise InvalidInput(problems or loaded.problems)
    errors, warnings = check_estate(loaded.estate, loaded.unloaded_ids)
    if errors:
        raise InvalidInput(errors)
    loaded.estate.warnings = warnings
    return loaded.estate


# ---- which known_hosts, which addresses ---------------------------------------------


def estate_known_hosts(estate: Estate) -> Path | None:
    """The estate's own known_hosts file (``sources.known_hosts``), or None when unset."""
    setting = estate.settings.sources.known_hosts
    return (estate.root / setting).absolute() if setting else None


def source_known_hosts(context: Context) -> Path:
    """The known_hosts file with the source hosts' keys: the estate's own when set, else
    its cloud target's (the sandbox's, written by ``sandbox up`` for the machines it made);
    InvalidInput when neither names one."""
    estate = context.estate
    return (estate_known_hosts(estate) or context.surroundings.source_known_hosts(estate)
            or require_estate_known_hosts(estate))


def require_estate_known_hosts(estate: Estate) -> Path:
    """The estate's own known_hosts file; InvalidInput when migrate.yaml does not set one."""
    path = estate_known_hosts(estate)
    if path is None:
        raise InvalidInput([estate.settings_doc.problem(
            ("sources",), "sources.known_hosts is not set: there is no file to record the "
            "source hosts' keys in",
            "add 'sources: {known_hosts: known_hosts}' to migrate.yaml (relative to the "
            "estate folder) and run migrate trust again")])
    return path


def guard_address(context: Context, address: str) -> None:
    """Refuse (GuardRefused) an address the estate's cloud target must not reach (on the
    sandbox: one that is not on this host)."""
    context.guard_address(address)


def guard_addresses(context: Context, addresses: Iterable[str]) -> None:
    """``guard_address`` on each address, all of them before any is connected to."""
    for address in dict.fromkeys(addresses):
        guard_address(context, address)


def known_hosts_name(address: str, port: int) -> str:
    """How OpenSSH (and paramiko) name a host in known_hosts: ``[addr]:port`` off port 22."""
    return address if port == 22 else f"[{address}]:{port}"


def is_key_line(line: str) -> bool:
    """A known_hosts line holding a key (not a comment, not a @revoked/@cert-authority marker)."""
    return len(line.split()) >= 3 and not line.lstrip().startswith(("#", "@"))


def names_host(names_field: str, name: str) -> bool:
    """Whether the first field of a known_hosts line names ``name`` (plain or hashed)."""
    for entry in names_field.split(","):
        if entry.startswith("|1|"):
            try:
                salt_b64, digest_b64 = entry[3:].split("|", 1)
                salt = base64.b64decode(salt_b64)
                digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
            except (ValueError, TypeError):
                continue
            if hmac.compare_digest(base64.b64encode(digest).decode(), digest_b64):
                return True
        elif entry == name:
            return True
    return False


def host_key_lines(path: Path, name: str) -> list[str]:
    """Every key a known_hosts file records for ``name`` (plain or hashed entries), as
    ``NAME TYPE KEY`` lines; none when the file is missing."""
    if not path.is_file():
        return []
    return [f"{name} {' '.join(line.split()[1:3])}" for line in path.read_text().splitlines()
            if is_key_line(line) and names_host(line.split()[0], name)]


# ---- the key a host offers -------------------------------------------------------------


def fingerprint_of(key_base64: str) -> str:
    """OpenSSH's SHA256 fingerprint of a public key blob (``ssh-keygen -l`` prints it)."""
    digest = hashlib.sha256(base64.b64decode(key_base64)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def offered_host_key(address: str, port: int = 22, preferred: Iterable[str] = (),
                     timeout: float = CONNECT_TIMEOUT) -> paramiko.PKey:
    """The host key ``address`` offers in a key exchange (no login), preferring the key
    types in ``preferred`` (those recorded for it); StageFailed when it does not answer or
    speaks no SSH within ``timeout``. The caller guarded the address."""
    try:
        sock = socket.create_connection((address, port), timeout=timeout)
    except OSError as error:
        raise StageFailed(f"cannot reach {address}:{port}: {error}",
                          hint="is the host up and sshd listening?") from None
    transport = paramiko.Transport(sock)
    try:
        options = transport.get_security_options()
        first = [a for t in preferred for a in KEY_ALGORITHMS.get(t, (t,))
                 if a in options.key_types]
        options.key_types = tuple(dict.fromkeys([*first, *options.key_types]))
        transport.start_client(timeout=timeout)
        return transport.get_remote_server_key()
    except (paramiko.SSHException, OSError, EOFError) as error:
        raise StageFailed(f"no SSH key exchange with {address}:{port}: {error}",
                          hint="is it an SSH server?") from None
    finally:
        transport.close()


@dataclass(frozen=True)
class KeyMismatch:
    """A host that offered another key than the one pinned for it ("TYPE SHA256:...")."""

    address: str
    pinned: str
    offered: str


def pinned_key_mismatch(address: str, pinned: str, port: int = 22,
                        timeout: float = PINNED_KEY_TIMEOUT) -> KeyMismatch | None:
    """Whether ``address`` offers the key ``pinned`` ("TYPE BASE64 [comment]"): None when it
    does, or when it does not answer within ``timeout`` (whoever connects next finds it
    unreachable); else both keys' fingerprints."""
    key_type, key_base64 = pinned.split()[:2]
    try:
        offered = offered_host_key(address, port, [key_type], timeout)
    except StageFailed:
        return None
    if (offered.get_name(), offered.get_base64()) == (key_type, key_base64):
        return None
    return KeyMismatch(address, f"{key_type} {fingerprint_of(key_base64)}",
                       f"{offered.get_name()} {fingerprint_of(offered.get_base64())}")


# ---- a checked SSH session ------------------------------------------------------------


class RejectWithReason(paramiko.RejectPolicy):
    """paramiko's RejectPolicy, raising a domain error that says whether the key is unknown
    or differs from a recorded key of another type (never adds anything)."""

    def __init__(self, known_hosts: Path) -> None:
        self.known_hosts = known_hosts

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str,
                         key: paramiko.PKey) -> None:
        recorded = client.get_host_keys().lookup(hostname)
        offered = f"{key.get_name()} {key.fingerprint}"
        if recorded:
            raise HostKeyChanged(
                f"host key of {hostname} CHANGED: it offered {offered}, but {self.known_hosts}"
                f" records {', '.join(sorted(recorded.keys()))} keys for it",
                hint="nothing was done; confirm the new key out of band, then record it with "
                     "'migrate trust ESTATE ... --accept FINGERPRINT'")
        raise HostKeyUnknown(
            f"host key of {hostname} is unknown: it offered {offered}, and {self.known_hosts}"
            " has no entry for it",
            hint="record it with 'migrate trust ESTATE' (the fingerprint is shown for you to "
                 "confirm); nothing was done")


@dataclass(frozen=True)
class Login:
    address: str
    user: str
    key_file: Path
    port: int = 22


@dataclass(frozen=True)
class CommandResult:
    status: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.status == 0


class SourceSession:
    """One SSH connection to a source host, host key checked; ``run`` runs shell commands."""

    def __init__(self, login: Login, client: paramiko.SSHClient) -> None:
        self.login = login
        self.client = client

    @property
    def is_root(self) -> bool:
        return self.login.user == "root"

    def as_root(self, command: str) -> str:
        """``command`` as root: itself for root, else through ``sudo -n`` (no password)."""
        return command if self.is_root else f"sudo -n sh -c {shlex.quote(command)}"

    def run(self, command: str, timeout: float = COMMAND_TIMEOUT) -> CommandResult:
        _stdin, stdout, stderr = self.client.exec_command(command, timeout=timeout)
        _stdin.close()
        try:
            out = stdout.read().decode("utf-8", "replace")
            error = stderr.read().decode("utf-8", "replace")
            status = stdout.channel.recv_exit_status()
        except TimeoutError:
            raise StageFailed(f"{self.login.address}: no answer to a probe in {timeout:.0f} s",
                              hint="the host is slow or a command hangs") from None
        return CommandResult(status, out, error)

    def stream_lines(self, command: str, timeout: float = COMMAND_TIMEOUT) -> Iterator[str]:
        """The lines ``command`` writes, as they arrive (stderr is discarded on the host)."""
        _stdin, stdout, _stderr = self.client.exec_command(f"{command} 2>/dev/null",
                                                           timeout=timeout)
        _stdin.close()
        for raw in stdout:
            yield raw.rstrip("\n")
        stdout.channel.recv_exit_status()

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> SourceSession:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def load_known_hosts(client: paramiko.SSHClient, path: Path) -> None:
    """Load exactly this known_hosts file (a missing one knows no host); a line paramiko
    cannot read is an input problem that names the file and the line."""
    if not path.is_file():
        return
    try:
        client.load_host_keys(str(path))
    except paramiko.hostkeys.InvalidHostKey as error:
        bad = str(error.line).strip()
        lines = path.read_text(errors="replace").splitlines()
        number = next((n for n, line in enumerate(lines, 1) if line.strip() == bad), None)
        raise InvalidInput([Problem(str(path), number, "", f"not a known_hosts entry: "
                                    f"{error.exc}", "fix or remove the line (ssh-keygen -R "
                                    "HOST removes a host's lines)")]) from None


def open_session(context: Context, login: Login) -> SourceSession:
    """Log in to a source host with its key, the host key checked against
    ``source_known_hosts`` (RejectPolicy); the address passes the sandbox guard first."""
    guard_address(context, login.address)
    known = source_known_hosts(context)
    client = paramiko.SSHClient()
    load_known_hosts(client, known)
    client.set_missing_host_key_policy(RejectWithReason(known))
    try:
        client.connect(login.address, port=login.port, username=login.user,
                       key_filename=str(login.key_file), look_for_keys=False,
                       allow_agent=False, timeout=CONNECT_TIMEOUT,
                       banner_timeout=CONNECT_TIMEOUT, auth_timeout=CONNECT_TIMEOUT)
    except MigrateError:
        client.close()
        raise
    except paramiko.BadHostKeyException as error:
        client.close()
        raise HostKeyChanged(
            f"host key of {login.address} CHANGED: it offered {error.key.get_name()} "
            f"{error.key.fingerprint}, but {known} records {error.expected_key.fingerprint}",
            hint="nothing was done; this is what a man in the middle looks like. Confirm "
                 "the new key out of band, then record it with 'migrate trust ESTATE ... "
                 "--accept FINGERPRINT'") from None
    except paramiko.AuthenticationException:
        client.close()
        raise StageFailed(f"{login.user}@{login.address} refused the key {login.key_file}",
                          hint="check source.ssh.user and the key's authorized_keys entry"
                          ) from None
    except (OSError, paramiko.SSHException) as error:
        client.close()
        raise StageFailed(f"cannot log in to {login.address}:{login.port}: {error}",
                          hint="is the host up and sshd listening?") from None
    return SourceSession(login, client)

