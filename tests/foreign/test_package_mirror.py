"""The sandbox's package mirror (apt-cacher-ng on a bridge address): a machine installs a
package through it and nothing else; it serves only the Debian archive; it starts once,
stops by its own pid, and refuses what it must not do."""

from __future__ import annotations

import http.server
import pwd
import re
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from migrate.core.errors import StageFailed
from migrate.rehearsal.sandbox import mirror, network
from tests.foreign import world

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]


def test_a_machine_installs_a_package_through_the_mirror_only(
        foreign_host: Path, foreign_net: world.Net, foreign_mirror: mirror.Mirror,
        foreign_root: Path, foreign_access: world.Access):
    _, public_key = world.operator_key(foreign_access.key.parent)
    spec = world.machine_spec("t-aptuser", foreign_net, 30, str(foreign_host), public_key)
    with world.machine(spec, foreign_root):
        world.boot(spec, foreign_root, foreign_access.known_hosts, foreign_mirror.url)
        assert world.settle(foreign_access, spec.ip) == "running"
        sources = foreign_access.check(spec.ip, "grep -rh '^deb' /etc/apt/sources.list"
                                                " /etc/apt/sources.list.d/ || true")
        assert sources.split("\n")[:1] == [f"deb {foreign_mirror.url} bookworm main"]
        assert sources.strip().count("\n") == 0, f"more than one source: {sources}"
        assert foreign_access.run(spec.ip, "command -v tree").returncode != 0

        started = time.monotonic()
        foreign_access.check(spec.ip, "apt-get update -q && DEBIAN_FRONTEND=noninteractive"
                                      " apt-get install -y -q --no-install-recommends tree")
        seconds = time.monotonic() - started
        print(f"\napt-get update + install tree through the mirror: {seconds:.1f} s")

        assert foreign_access.check(spec.ip, "tree --version").startswith("tree v2")
        sent = [path for client, path in mirror.served(foreign_mirror.name)
                if client == spec.ip]
        assert any(path.startswith("debrep/dists/bookworm/") for path in sent), sent
        assert any(path.startswith("debrep/pool/main/t/tree/tree_") for path in sent), sent
        assert seconds < 120


def test_machines_on_other_sandbox_bridges_reach_the_mirror_too(
        foreign_host: Path, foreign_mirror: mirror.Mirror, foreign_root: Path,
        foreign_access: world.Access):
    """One mirror serves every project bridge: the host routes between them."""
    _, public_key = world.operator_key(foreign_access.key.parent)
    with world.bridge("t-foreign-b", "192.168.177.129/26") as other:
        spec = world.machine_spec("t-aptuser-b", other, 10, str(foreign_host), public_key)
        with world.machine(spec, foreign_root):
            world.boot(spec, foreign_root, foreign_access.known_hosts, foreign_mirror.url)
            foreign_access.check(spec.ip, "apt-get update -q && apt-get install -y -q"
                                          " --no-install-recommends tree && tree --version")
    assert any(client == spec.ip and path.startswith("debrep/pool/main/t/tree/")
               for client, path in mirror.served(foreign_mirror.name))


def test_starting_a_running_mirror_again_changes_nothing(foreign_net: world.Net,
                                                         foreign_mirror: mirror.Mirror):
    again = mirror.start_mirror(foreign_mirror.name, foreign_net.gateway_ip)
    assert again.pid == foreign_mirror.pid is not None
    assert again.url == f"http://{foreign_net.gateway_ip}:3142/debian"
    assert again.bridge == foreign_net.device


def test_the_mirror_listens_on_its_bridge_address_as_its_own_user(
        foreign_mirror: mirror.Mirror):
    status = Path(f"/proc/{foreign_mirror.pid}/status").read_text()
    uid = next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:"))
    assert pwd.getpwuid(int(uid)).pw_name == "apt-cacher-ng"
    listening = mirror.listening_sockets(foreign_mirror.pid)
    assert listening == {(foreign_mirror.address, 3142)}


def test_the_mirror_refuses_any_other_upstream(foreign_mirror: mirror.Mirror,
                                               local_web_server: tuple[int, list[str]]):
    port, requests = local_web_server
    network.assert_local_address(foreign_mirror.address)
    proxy = urllib.request.ProxyHandler({"http": f"http://{foreign_mirror.address}:3142"})
    opener = urllib.request.build_opener(proxy)
    for url in (f"http://127.0.0.1:{port}/debian/dists/bookworm/InRelease",
                "http://deb.debian.org/debian/dists/bookworm/InRelease"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            opener.open(url, timeout=10)
        refused.value.close()
        assert refused.value.code == 403, url
    assert requests == [], "the mirror must not have connected anywhere else"


def test_a_mirror_stops_by_its_own_pid_and_starts_again(foreign_net: world.Net,
                                                        foreign_mirror: mirror.Mirror):
    name = "t-foreign-restart"
    try:
        started = mirror.start_mirror(name, foreign_net.gateway_ip, port=3143)
        assert started.pid is not None and started.pid != foreign_mirror.pid
        assert _accepts(foreign_net.gateway_ip, 3143)
        assert mirror.stop_mirror(name) is True
        assert mirror.find_mirror_pid(name) is None
        assert not _accepts(foreign_net.gateway_ip, 3143)
        assert mirror.find_mirror_pid(foreign_mirror.name) == foreign_mirror.pid  # untouched
        assert mirror.stop_mirror(name) is False
        again = mirror.start_mirror(name, foreign_net.gateway_ip, port=3143)
        assert again.pid not in (None, started.pid)
    finally:
        mirror.stop_mirror(name)
        shutil.rmtree(mirror.mirror_dir(name), ignore_errors=True)


def test_a_running_mirror_is_not_moved_to_another_address(foreign_net: world.Net,
                                                          foreign_mirror: mirror.Mirror):
    with (world.bridge("t-foreign-b", "192.168.177.129/26") as other,
          pytest.raises(StageFailed, match=re.escape("already runs on 192.168.177.1:3142"))):
        mirror.start_mirror(foreign_mirror.name, other.gateway_ip)
    assert mirror.find_mirror_pid(foreign_mirror.name) == foreign_mirror.pid


def test_a_port_taken_by_another_service_fails_the_start_with_the_daemons_words(
        foreign_net: world.Net):
    name = "t-foreign-taken"
    network.assert_local_address(foreign_net.gateway_ip)
    with socket.create_server((foreign_net.gateway_ip, 3144)):
        started = time.monotonic()
        try:
            with pytest.raises(StageFailed,
                               match=re.escape("did not listen on 192.168.177.1:3144")
                               ) as failed:
                mirror.start_mirror(name, foreign_net.gateway_ip, port=3144)
            assert time.monotonic() - started < 10
            assert "apt-cacher-ng" in failed.value.hint
            assert mirror.find_mirror_pid(name) is None
        finally:
            mirror.stop_mirror(name)
            shutil.rmtree(mirror.mirror_dir(name), ignore_errors=True)
    print(f"\n{failed.value.message}")


def test_a_mirror_listens_only_on_a_sandbox_bridge(foreign_host: Path, tmp_path: Path):
    for address in ("127.0.0.1", "192.168.177.250", "not-an-address"):
        with pytest.raises(StageFailed, match=r"bridge|IPv4"):
            mirror.start_mirror("t-nowhere", address, base=tmp_path)
    assert mirror.find_mirror_pid("t-nowhere", base=tmp_path) is None


# ---- helpers -----------------------------------------------------------------------------


@pytest.fixture
def local_web_server() -> Iterator[tuple[int, list[str]]]:
    """An HTTP server on loopback that records every request it gets."""
    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], requests
    finally:
        server.shutdown()
        server.server_close()


def _accepts(address: str, port: int) -> bool:
    network.assert_local_address(address)
    try:
        with socket.create_connection((address, port), timeout=1):
            return True
    except OSError:
        return False

