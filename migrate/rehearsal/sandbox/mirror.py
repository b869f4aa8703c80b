"""The sandbox cloud's internal package mirror: Debian's apt-cacher-ng on a bridge address.

Government clouds have no Internet: their machines install packages from the cloud's own
Debian mirror (``cloud.packages.mirror`` in migrate.yaml). The sandbox offers one on this
host: an apt-cacher-ng run in the foreground with a configuration of its own, listening
only on the address of a project bridge, serving one Debian archive at
``http://ADDRESS:3142/debian`` from one upstream, this host's ``http://deb.debian.org/debian/``.
``ForceManaged`` makes it refuse any other location a client names (a proxy request for
another host gets 403 without a connection), so a machine reaches deb.debian.org through it
and nothing else. Machines get a plain ``sources.list`` naming that URL, the same shape as
a real cloud's mirror, so nothing downstream cares which one it is.

A mirror is a host resource, like a bridge: its name is unique on this host and everything
of it lives in one folder, ``/var/cache/migrate/mirror/NAME/`` (``MIGRATE_MIRROR_CACHE``
moves the base): ``conf/`` (rewritten on every start), ``packages/`` (what it downloaded,
kept between runs, so a warm mirror serves repeated rehearsals without fetching again),
``log/``, ``console.log`` and ``mirror.json``. Nothing is remembered in memory: while it runs,
it is the apt-cacher-ng process whose configuration directory is that ``conf/``, found in
/proc, started and stopped by its own pid. It runs as the packaged ``apt-cacher-ng`` user.
Whoever starts a mirror records its name and stops it by that name.
"""

from __future__ import annotations

import fcntl
import grp
import ipaddress
import json
import os
import pwd
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from migrate.adapters.processes import all_pids, cmdline
from migrate.core.errors import EnvironmentNotReady, StageFailed
from migrate.rehearsal.sandbox import images, network
from migrate.rehearsal.sandbox.host import find_tool, require_host

PORT = 3142
ARCHIVE_PATH = "/debian"
UPSTREAM = images.MIRROR.rstrip("/") + "/"  # the only upstream: this host's Debian archive
SERVICE_USER = "apt-cacher-ng"
DEFAULT_BASE = Path("/var/cache/migrate/mirror")
DAEMON = "apt-cacher-ng"
SOURCES_LIST = Path("etc/apt/sources.list")
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
EXIT_GRACE = 2.0  # a daemon not found this long after the launch has exited

Base = str | os.PathLike[str] | None

_SAFE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


@dataclass(frozen=True)
class Mirror:
    name: str
    address: str  # the bridge address it listens on
    port: int
    bridge: str
    pid: int | None  # None: not running
    directory: Path

    @property
    def url(self) -> str:
        """The Debian archive machines name in their sources.list."""
        return mirror_url(self.address, self.port)

    @property
    def running(self) -> bool:
        return self.pid is not None


# ---- names and files -----------------------------------------------------------------


def mirror_url(address: str, port: int = PORT) -> str:
    return f"http://{address}:{port}{ARCHIVE_PATH}"


def mirror_dir(name: str, base: Base = None) -> Path:
    """Mirror ``name``'s folder: the argument's, else $MIGRATE_MIRROR_CACHE's, else the
    default base, plus the name."""
    if base is None:
        from_env = os.environ.get("MIGRATE_MIRROR_CACHE")
        base = Path(from_env) if from_env else DEFAULT_BASE
    return Path(base).absolute() / _checked_name(name)


def _checked_name(name: str) -> str:
    if not _SAFE_NAME.match(name):
        raise StageFailed(f"invalid mirror name {name!r}",
                          hint="lowercase letters, digits and '-', e.g. the estate's id")
    return name


def _conf_dir(directory: Path) -> Path:
    return directory / "conf"


def config_text(address: str, port: int, directory: Path) -> str:
    """acng.conf of a sandbox mirror: one archive, one upstream, one listening address."""
    return (
        "# Written by migrate (migrate/rehearsal/sandbox/mirror.py) on every start.\n"
        f"CacheDir: {directory / 'packages'}\n"
        f"LogDir: {directory / 'log'}\n"
        "SupportDir: /usr/lib/apt-cacher-ng\n"
        f"BindAddress: {address}\n"
        f"Port: {port}\n"
        "ForeGround: 1\n"
        # Only the remapped archive below is served; any other location a client names
        # (a proxy request for another host, say) is refused without connecting.
        "ForceManaged: 1\n"
        "PassThroughPattern: ^$\n"
        "ForwardBtsSoap: 0\n"
        "RedirMax: 0\n"
        f"Remap-debrep: {ARCHIVE_PATH} ; file:backends_debian\n"
        "ExThreshold: 4\n"
    )


def apt_sources_text(url: str, suite: str = images.SUITE) -> str:
    """The sources.list of a machine that installs from the mirror at ``url`` only."""
    return (
        "# The cloud's internal package mirror (written by migrate); no other source.\n"
        f"deb {url} {suite} main\n"
    )


def write_apt_sources(root_dir: Path, url: str, suite: str = images.SUITE) -> Path:
    """Point a machine's apt at the mirror: its sources.list under ``root_dir`` (an upper
    directory before the first boot, or a machine's root). The images' lists are empty, so
    the first ``apt-get update`` reads the mirror's indexes."""
    path = root_dir / SOURCES_LIST
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(apt_sources_text(url, suite))
    os.chmod(path, 0o644)
    return path


# ---- start ---------------------------------------------------------------------------


def start_mirror(name: str, address: str, port: int = PORT, base: Base = None) -> Mirror:
    """Run mirror ``name`` on ``address`` (a project bridge's own address); idempotent.

    Already running there: returned as it is. Running on another address or port: refused
    (another rehearsal may be using it; stop it first).
    """
    require_host()
    daemon = _require_daemon()
    bridge = _bridge_carrying(address)
    directory = mirror_dir(name, base)
    with _mirror_lock(directory):
        pid = find_mirror_pid(name, base)
        if pid is not None:
            return _running_as_wanted(name, base, address, port)
        _write_config(directory, address, port)
        _prepare_writable(directory / "packages", directory / "log")
        _launch(daemon, directory)
        pid = _wait_listening(name, base, address, port, START_TIMEOUT)
        _write_record(directory, {"name": name, "address": address, "port": port,
                                  "bridge": bridge, "pid": pid, "url": mirror_url(address, port)})
    return _mirror(name, base)


def _running_as_wanted(name: str, base: Base, address: str, port: int) -> Mirror:
    mirror = _mirror(name, base)
    if (mirror.address, mirror.port) != (address, port):
        raise StageFailed(
            f"package mirror {name} already runs on {mirror.address}:{mirror.port}"
            f" (pid {mirror.pid}), not {address}:{port}",
            hint="another rehearsal may use it: stop it first (mirror.stop_mirror) or give"
                 " this one another name")
    return mirror


def _require_daemon() -> str:
    daemon = find_tool(DAEMON)
    if daemon is None or find_tool("setpriv") is None or find_tool("setsid") is None:
        raise EnvironmentNotReady(
            "the sandbox package mirror needs apt-cacher-ng (and setpriv, setsid)",
            hint="install it as root: apt-get install apt-cacher-ng util-linux"
                 " (scripts/setup-host.sh does)")
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        raise EnvironmentNotReady(
            f"user {SERVICE_USER} does not exist; the mirror runs as that user",
            hint="reinstall the package: apt-get install --reinstall apt-cacher-ng") from None
    return daemon


def _bridge_carrying(address: str) -> str:
    """The project bridge whose own address ``address`` is: the mirror listens there only."""
    try:
        ip = ipaddress.IPv4Address(address)
    except ValueError:
        raise StageFailed(f"mirror address {address!r} is not an IPv4 address",
                          hint="give a sandbox bridge's address, e.g. 192.168.177.1") from None
    for bridge in network.list_bridges():
        if any(interface.ip == ip for interface in bridge.interfaces):
            return bridge.name
    raise StageFailed(
        f"no sandbox bridge carries {address}: the mirror listens on a bridge address only",
        hint="create the bridge first (network.ensure_bridge) and give its gateway address")


def _write_config(directory: Path, address: str, port: int) -> None:
    conf = _conf_dir(directory)
    conf.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o755)
    os.chmod(conf, 0o755)
    files = {"acng.conf": config_text(address, port, directory),
             "backends_debian": UPSTREAM + "\n"}
    for file_name, text in files.items():
        path = conf / file_name
        path.write_text(text)
        os.chmod(path, 0o644)


def _prepare_writable(*directories: Path) -> None:
    """The daemon's package and log folders, owned by its user (it never runs as root)."""
    user = pwd.getpwnam(SERVICE_USER)
    for directory in directories:
        directory.mkdir(parents=True, exist_ok=True)
        os.chown(directory, user.pw_uid, user.pw_gid)
        os.chmod(directory, 0o750)


def _launch(daemon: str, directory: Path) -> None:
    group = grp.getgrgid(pwd.getpwnam(SERVICE_USER).pw_gid).gr_name
    command = [
        find_tool("setsid") or "setsid", "--fork",
        find_tool("setpriv") or "setpriv", f"--reuid={SERVICE_USER}", f"--regid={group}",
        "--init-groups", daemon, "-c", str(_conf_dir(directory)),
    ]
    with open(directory / "console.log", "wb") as console:
        subprocess.run(command, stdin=subprocess.DEVNULL, stdout=console, stderr=console,
                       check=True, cwd=directory)


def _wait_listening(name: str, base: Base, address: str, port: int, timeout: float) -> int:
    network.assert_local_address(address)
    started = time.monotonic()
    while time.monotonic() < started + timeout:
        pid = find_mirror_pid(name, base)
        # Its own socket: another service on the port would accept too while ours fails.
        if pid is not None and (address, port) in listening_sockets(pid):
            return pid
        if time.monotonic() > started + EXIT_GRACE and (pid is None or _complained(name, base)):
            break  # it exited, or said why it cannot serve ("Couldn't bind socket")
        time.sleep(0.05)
    pid = find_mirror_pid(name, base)
    if pid is not None:
        _stop_pid(pid, STOP_TIMEOUT)
    raise StageFailed(
        f"package mirror {name} did not listen on {address}:{port}:\n"
        + mirror_log_tail(name, base),
        hint="the lines above are apt-cacher-ng's; is another service on that port?")


def _complained(name: str, base: Base) -> bool:
    """Whether the daemon wrote to its console: in the foreground it logs to its LogDir and
    prints only what stops it from serving."""
    try:
        return (mirror_dir(name, base) / "console.log").stat().st_size > 0
    except OSError:
        return False


def _write_record(directory: Path, record: dict[str, object]) -> None:
    path = directory / "mirror.json"
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(temporary, path)


@contextmanager
def _mirror_lock(directory: Path) -> Iterator[None]:
    """Serialise start and stop of one mirror across processes (the lock dies with us)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


# ---- stop ----------------------------------------------------------------------------


def stop_mirror(name: str, base: Base = None) -> bool:
    """Stop mirror ``name`` (its own process, by pid); True if it was running. Its folder,
    with the downloaded packages, stays."""
    directory = mirror_dir(name, base)
    if not directory.is_dir():
        return False
    with _mirror_lock(directory):
        pid = find_mirror_pid(name, base)
        if pid is None:
            return False
        _stop_pid(pid, STOP_TIMEOUT)
        return True


def _stop_pid(pid: int, timeout: float) -> None:
    _signal(pid, signal.SIGTERM)
    if _wait_gone(pid, timeout):
        return
    _signal(pid, signal.SIGKILL)
    if not _wait_gone(pid, 5.0):
        raise StageFailed(f"package mirror (pid {pid}) does not stop")


def _signal(pid: int, signum: int) -> None:
    with suppress(ProcessLookupError):
        os.kill(pid, signum)


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _is_daemon(pid):
            return True
        time.sleep(0.05)
    return not _is_daemon(pid)


# ---- discovery -----------------------------------------------------------------------


def find_mirror_pid(name: str, base: Base = None) -> int | None:
    """The pid of mirror ``name``'s apt-cacher-ng (found by its configuration directory)."""
    conf = _conf_dir(mirror_dir(name, base))
    found = [pid for pid in _daemon_pids() if conf_dir_of(cmdline(pid)) == conf]
    return min(found) if found else None


def mirror_status(name: str, base: Base = None) -> Mirror | None:
    """The mirror as recorded and as /proc shows it now; None if it was never started."""
    if not (mirror_dir(name, base) / "mirror.json").is_file():
        return None
    return _mirror(name, base)


def _mirror(name: str, base: Base) -> Mirror:
    directory = mirror_dir(name, base)
    try:
        record = json.loads((directory / "mirror.json").read_text())
    except (OSError, ValueError):
        raise StageFailed(
            f"package mirror {name} has no readable record ({directory / 'mirror.json'})",
            hint="stop it (mirror.stop_mirror) and start it again") from None
    return Mirror(name=name, address=record["address"], port=int(record["port"]),
                  bridge=record["bridge"], pid=find_mirror_pid(name, base),
                  directory=directory)


def mirror_log_tail(name: str, base: Base = None, lines: int = 20) -> str:
    directory = mirror_dir(name, base)
    kept: list[str] = []
    for path in (directory / "console.log", directory / "log/apt-cacher.err"):
        with suppress(OSError):
            kept += [f"{path.name}: {line}" for line in path.read_text(errors="replace")
                     .splitlines() if line.strip()]
    return "\n".join(kept[-lines:]) or "(apt-cacher-ng wrote nothing)"


def served(name: str, base: Base = None) -> list[tuple[str, str]]:
    """What the mirror sent, from its transfer log: (client address, path), oldest first."""
    try:
        text = (mirror_dir(name, base) / "log/apt-cacher.log").read_text(errors="replace")
    except OSError:
        return []
    return parse_transfer_log(text)


def parse_transfer_log(text: str) -> list[tuple[str, str]]:
    """The ``O`` (sent to a client) lines of apt-cacher.log: ``time|O|bytes|client|path``."""
    return [(fields[3], fields[4]) for fields in (line.split("|", 4) for line in text.splitlines())
            if len(fields) == 5 and fields[1] == "O"]


def listening_sockets(pid: int) -> set[tuple[str, int]]:
    """(address, port) of the IPv4 TCP sockets process ``pid`` listens on, from /proc."""
    inodes = set()
    with suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[len("socket:["):-1])
    try:
        table = Path(f"/proc/{pid}/net/tcp").read_text()
    except OSError:
        return set()
    return {address for address, inode in parse_listening(table) if inode in inodes}


def parse_listening(table: str) -> list[tuple[tuple[str, int], str]]:
    """((address, port), socket inode) of the LISTEN lines of a /proc/net/tcp table."""
    found = []
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 9 and fields[3] == "0A":
            host, port = fields[1].split(":")
            address = socket.inet_ntoa(bytes.fromhex(host)[::-1])
            found.append(((address, int(port, 16)), fields[9]))
    return found


def conf_dir_of(argv: list[str]) -> Path | None:
    """The configuration directory an apt-cacher-ng command line names (``-c DIR``)."""
    for index, arg in enumerate(argv[:-1]):
        if arg == "-c":
            return Path(argv[index + 1])
    return None


def _daemon_pids() -> list[int]:
    return [pid for pid in all_pids() if _is_daemon(pid)]


def _is_daemon(pid: int) -> bool:
    argv = cmdline(pid)
    return bool(argv) and os.path.basename(argv[0]) == DAEMON

