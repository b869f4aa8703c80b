"""Legacy machines boot and serve on their own: rsj-sbcx's web1 and db1 as two sandbox
machines on a test bridge, seeded with ``write_into_root`` before the first boot only."""

from __future__ import annotations

import http.client
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from migrate.core.errors import EnvironmentNotReady, GuardRefused
from migrate.rehearsal.legacy.seed import build_host_seeds, expected_digests, write_into_root
from tests.legacy.helpers import SMALL_SCALE, make_seeded_estate

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

BOOT_TIMEOUT_S = 180


@pytest.fixture
def sandbox():
    try:
        from migrate.rehearsal.sandbox import images, layout, machines, network
        from migrate.rehearsal.sandbox.host import require_host

        require_host()
    except (EnvironmentNotReady, ImportError) as error:
        pytest.skip(f"legacy machine tests need root and the sandbox tools: {error}")
    return images, layout, machines, network


@pytest.fixture
def test_bridge(sandbox) -> Iterator[tuple[str, str]]:
    """A bridge on a free 10.250.N.0/24 (N in 150..199); removed afterwards."""
    network = sandbox[3]
    for index in range(50):
        third = 150 + (os.getpid() + index) % 50
        name = f"lg{os.getpid() % 100000}-{index}"
        try:
            network.ensure_bridge(name, f"10.250.{third}.1/24")
        except GuardRefused:
            continue
        try:
            yield name, f"10.250.{third}"
        finally:
            network.remove_bridge(name, force=True)
        return
    pytest.fail("no free 10.250.N.0/24 network for a test bridge")


def get_json(address: str, port: int, path: str) -> tuple[int, dict]:
    connection = http.client.HTTPConnection(address, port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def wait_for_health(address: str, port: int, consoles: list[str]) -> dict:
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    last: object = None
    while time.monotonic() < deadline:
        try:
            status, health = get_json(address, port, "/health")
            if status == 200 and health["database"] == "ok":
                return health
            last = health
        except (OSError, ValueError) as error:
            last = error
        time.sleep(1)
    raise AssertionError(f"no healthy app on {address}:{port} after {BOOT_TIMEOUT_S} s "
                         f"(last: {last}); consoles:\n" + "\n".join(consoles))


def assert_app_runs_unprivileged(upper: Path) -> None:
    """The app runs as the user systemd-sysusers made (uid from the machine's passwd)."""
    passwd = (upper / "etc/passwd").read_text()
    uid = next(int(line.split(":")[2]) for line in passwd.splitlines()
               if line.startswith("sbcx-web:"))
    assert 0 < uid < 1000
    uids = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            cmdline = (status.parent / "cmdline").read_bytes()
            if b"/etc/legacy/sbcx-web.json" in cmdline:
                line = next(x for x in status.read_text().splitlines() if x.startswith("Uid:"))
                uids.append(int(line.split()[1]))
        except (OSError, StopIteration):
            continue
    assert uid in uids and 0 not in uids


def test_seeded_machines_serve_on_their_own(sandbox, test_bridge, tmp_path: Path) -> None:
    images, layout, machines, network = sandbox
    bridge, prefix = test_bridge
    image = images.ensure_image("legacy")
    root = tmp_path / "sandbox"
    estate = make_seeded_estate(tmp_path)
    system = estate.estate.systems["rsj-sbcx"]
    addresses = {"web1": f"{prefix}.21", "db1": f"{prefix}.22"}
    seeds = {s.host: s for s in build_host_seeds(system, estate.secrets_dir, SMALL_SCALE,
                                                 addresses=addresses)}
    names = {host: f"lg{os.getpid() % 10000}{host}" for host in seeds}
    created = []
    try:
        for host, seed in seeds.items():
            spec = machines.MachineSpec(name=names[host], image=str(image), bridge=bridge,
                                        address=f"{addresses[host]}/24",
                                        gateway=f"{prefix}.1", hostname=host)
            machines.create_machine(spec, root)
            created.append(names[host])
            write_into_root(seed, layout.upper_dir(names[host], root))
            machines.start_machine(names[host], root)
        network.assert_local_address(addresses["web1"])
        consoles = lambda: [machines.console_tail(n, root) for n in created]  # noqa: E731
        health = wait_for_health(addresses["web1"], 8080, consoles())
        assert health["status"] == "ok" and health["files"] == "ok"
        expected = expected_digests(seeds["db1"])["tables"]["sbcx.insured"]
        status, page = get_json(addresses["web1"], 8080, "/api/insured?limit=5")
        assert status == 200 and page["total"] == expected["rows"]
        status, listing = get_json(addresses["web1"], 8080, "/files?manifest=1")
        assert {e["path"]: e["sha256"] for e in listing["files"]} == \
            expected_digests(seeds["web1"])["files"]
        assert_app_runs_unprivileged(layout.upper_dir(names["web1"], root))
        # A reboot of the database machine keeps the data and seeds nothing twice.
        machines.stop_machine(names["db1"], root)
        machines.start_machine(names["db1"], root)
        wait_for_health(addresses["web1"], 8080, consoles())
        status, page = get_json(addresses["web1"], 8080, "/api/insured?limit=5")
        assert status == 200 and page["total"] == expected["rows"]
    finally:
        for name in created:
            machines.destroy_machine(name, root)
