"""Real machines on test bridges: lifecycle, isolation, reachability, ssh, cleanup."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from migrate.core.errors import GuardRefused, StageFailed
from migrate.rehearsal.sandbox import hostkeys, layout, machines, network

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]


def veth_exists(name: str) -> bool:
    return Path("/sys/class/net", layout.veth_name(name)).exists()


def mounts_under(path: Path) -> list[str]:
    prefix = str(path)
    return [
        line for line in Path("/proc/self/mountinfo").read_text().splitlines() if prefix in line
    ]


def test_machine_lifecycle(make_net, make_machine, sandbox_root, known_hosts, ssh) -> None:
    net = make_net()
    spec = make_machine("life", net, 10, start=False)
    assert machines.machine_status("life", sandbox_root) == machines.STOPPED
    pid = machines.start_machine("life", sandbox_root)
    assert machines.machine_status("life", sandbox_root) == machines.RUNNING
    assert machines.start_machine("life", sandbox_root) == pid  # already running
    assert machines.wait_ssh_ready("life", 30, sandbox_root) < 30
    [info] = machines.list_machines(sandbox_root)
    assert (info.name, info.status, info.pid, info.bridge) == ("life", "running", pid, net.bridge)
    assert veth_exists("life")

    machines.stop_machine("life", sandbox_root)
    assert machines.machine_status("life", sandbox_root) == machines.STOPPED
    assert (
        not Path(f"/proc/{pid}/cmdline").exists() or not Path(f"/proc/{pid}/cmdline").read_bytes()
    )
    assert not veth_exists("life")

    # A stopped machine boots again with its data and identity (no "File exists").
    machines.start_machine("life", sandbox_root)
    machines.wait_ssh_ready("life", 30, sandbox_root)
    result = ssh(spec.ip, "cat /etc/hostname", known_hosts(spec))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "life"

    machines.destroy_machine("life", sandbox_root)
    assert machines.machine_status("life", sandbox_root) == machines.ABSENT
    assert not layout.machine_dir("life", sandbox_root).exists()


def test_overlay_isolation(make_net, make_machine, sandbox_root, cloud_image, known_hosts, ssh):
    net = make_net()
    first = make_machine("iso-a", net, 11)
    second = make_machine("iso-b", net, 12)
    for spec in (first, second):
        machines.wait_ssh_ready(spec.name, 30, sandbox_root)
    trusted = known_hosts(first, second)

    wrote = ssh(first.ip, "echo only-a > /root/marker && cat /root/marker", trusted)
    assert wrote.stdout.strip() == "only-a", wrote.stderr
    other = ssh(second.ip, "test -e /root/marker && echo present || echo absent", trusted)
    assert other.stdout.strip() == "absent", other.stderr
    assert not (cloud_image / "root/marker").exists()
    assert (layout.upper_dir("iso-a", sandbox_root) / "root/marker").read_text() == "only-a\n"


REACH = (
    'python3 -c "import socket,sys; s=socket.create_connection((sys.argv[1],22),5);'
    ' print(s.recv(64).decode().strip())" {}'
)


def test_machines_reach_each_other(make_net, make_machine, sandbox_root, known_hosts, ssh):
    net, other_net = make_net(), make_net()
    web = make_machine("reach-web", net, 21)
    db = make_machine("reach-db", net, 22)
    far = make_machine("reach-far", other_net, 23)
    for spec in (web, db, far):
        machines.wait_ssh_ready(spec.name, 30, sandbox_root)
    trusted = known_hosts(web, db, far)

    same_bridge = ssh(web.ip, REACH.format(db.ip), trusted)
    assert same_bridge.stdout.startswith("SSH-2.0-"), same_bridge.stderr
    across_bridges = ssh(far.ip, REACH.format(web.ip), trusted)
    assert across_bridges.stdout.startswith("SSH-2.0-"), across_bridges.stderr


def route_lookup(destination: str, source: str, bridge: str) -> subprocess.CompletedProcess[str]:
    # A route lookup only (no packet): what the host would do with a machine's packet.
    return subprocess.run(
        ["ip", "route", "get", destination, "from", source, "iif", bridge],
        capture_output=True,
        text=True,
        check=False,
    )


def test_traffic_from_a_bridge_cannot_leave_the_host(make_net) -> None:
    net, other = make_net(), make_net()
    forwarded = route_lookup(f"{other.prefix}.10", f"{net.prefix}.10", net.bridge)
    assert forwarded.returncode == 0, forwarded.stderr
    assert f"dev {other.bridge}" in forwarded.stdout
    outside = route_lookup("192.0.2.10", f"{net.prefix}.10", net.bridge)
    assert outside.returncode != 0
    assert "no route to host" in outside.stderr.lower()
    table = subprocess.run(
        ["ip", "route", "show", "table", str(network.ROUTE_TABLE)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "unreachable default" in table.stdout


def test_ssh_checks_the_host_key(make_net, make_machine, sandbox_root, tmp_path, ssh) -> None:
    net = make_net()
    spec = make_machine("keys", net, 30)
    machines.wait_ssh_ready("keys", 30, sandbox_root)

    right = hostkeys.write_known_hosts(
        tmp_path / "right", [hostkeys.known_hosts_line("keys", spec.ip, sandbox_root)]
    )
    result = ssh(spec.ip, "hostname", right)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "keys"

    _, impostor_key = hostkeys.ensure_client_keypair(tmp_path / "impostor")
    wrong = hostkeys.write_known_hosts(
        tmp_path / "wrong", [hostkeys.known_hosts_entry(spec.ip, impostor_key)]
    )
    refused = ssh(spec.ip, "hostname", wrong)
    assert refused.returncode == 255
    assert "host key" in refused.stderr.lower()
    assert refused.stdout == ""

    unknown = hostkeys.write_known_hosts(tmp_path / "empty", [])
    assert ssh(spec.ip, "hostname", unknown).returncode == 255


def test_machine_without_sshd_is_reported_with_its_boot_log(make_net, make_machine, sandbox_root):
    net = make_net()
    make_machine("nossh", net, 40, masked_units=("ssh.service",))
    with pytest.raises(StageFailed) as caught:
        machines.wait_ssh_ready("nossh", 6, sandbox_root)
    message = caught.value.message
    assert "was not ssh-ready" in message
    assert "Reached target" in message or "Started" in message  # lines of the boot log


def test_nothing_is_left_behind(make_net, make_machine, sandbox_root) -> None:
    net = make_net()
    make_machine("left", net, 50)
    machines.wait_ssh_ready("left", 30, sandbox_root)
    pid = machines.find_machine_pid("left", sandbox_root)
    assert pid is not None
    assert veth_exists("left")
    groups = [
        Path(g)
        for g in json.loads((layout.machine_dir("left", sandbox_root) / "cgroups.json").read_text())
    ]
    assert groups and all(g.is_dir() for g in groups)
    for group in groups:  # nspawn runs in a sub-cgroup (supervisor) of the machine's own
        members = [f.read_text().split() for f in group.rglob("cgroup.procs")]
        assert any(str(pid) in procs for procs in members)

    machines.destroy_machine("left", sandbox_root)
    network.remove_bridge(net.network)

    assert machines.find_machine_pid("left", sandbox_root) is None
    assert not veth_exists("left")
    assert not Path("/sys/class/net", net.bridge).exists()
    assert net.bridge not in [b.name for b in network.list_bridges()]
    assert mounts_under(sandbox_root) == []
    rules = subprocess.run(["ip", "rule", "show"], capture_output=True, text=True, check=True)
    assert net.bridge not in rules.stdout
    assert list(sandbox_root.joinpath("machines").iterdir()) == []
    assert not any(g.exists() for g in groups)


def test_guard_on_real_routes(make_net) -> None:
    net = make_net()
    network.assert_local_address(f"{net.prefix}.10")
    network.assert_local_address(net.gateway)
    with pytest.raises(GuardRefused):
        network.assert_local_address("192.0.2.10")
    with pytest.raises(GuardRefused):  # allowed, but the host routes it off the machine
        network.assert_local_address("192.0.2.10", ["192.0.2.0/24"])
    with pytest.raises(GuardRefused):
        network.assert_local_address("10.20.0.5", ["10.10.0.0/16"])


@pytest.fixture
def namespace_network(host_ready):
    """A network namespace reached by a veth: 10.249.N.0/24, as allowed_networks would be."""
    namespace, device = f"mgtest{os.getpid() % 100000}", "mgt-veth0"
    third = 100 + os.getpid() % 100
    commands = [
        ["ip", "netns", "add", namespace],
        ["ip", "link", "add", device, "type", "veth", "peer", "name", "eth0", "netns", namespace],
        ["ip", "addr", "add", f"10.249.{third}.1/24", "dev", device],
        ["ip", "link", "set", device, "up"],
    ]
    try:
        for command in commands:
            subprocess.run(command, check=True, capture_output=True)
        yield f"10.249.{third}"
    finally:
        subprocess.run(["ip", "link", "del", device], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)


def test_guard_accepts_allowed_network_behind_a_namespace(namespace_network) -> None:
    address = f"{namespace_network}.2"
    with pytest.raises(GuardRefused):  # not listed: refused even though it is local
        network.assert_local_address(address)
    network.assert_local_address(address, [f"{namespace_network}.0/24"])


def test_two_machines_start_together_and_gateway_mac_stays(make_net, make_machine, sandbox_root):
    net = make_net()
    first = make_machine("pair-a", net, 60)
    machines.wait_ssh_ready("pair-a", 30, sandbox_root)
    # pair-b's veth joining the bridge must not change the gateway's MAC under pair-a.
    make_machine("pair-b", net, 61)
    make_machine("pair-c", net, 62)
    for name in ("pair-b", "pair-c"):
        assert machines.wait_ssh_ready(name, 15, sandbox_root) < 15
    mac = Path("/sys/class/net", net.bridge, "address").read_text().strip()
    assert mac == network.bridge_mac(net.bridge)
    machines.stop_machine("pair-b", sandbox_root)
    assert machines.read_ssh_banner(first.ip, timeout=3.0) is not None


def test_machines_are_found_again_from_the_host_alone(make_net, make_machine, sandbox_root):
    """No state in memory: another process starts it, a killed nspawn leaves it findable."""
    net = make_net()
    make_machine("found", net, 70, start=False)
    started = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from migrate.rehearsal.sandbox import machines;"
            " print(machines.start_machine('found', sys.argv[1]))",
            str(sandbox_root),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    nspawn_pid = int(started.stdout)
    assert machines.find_machine_pid("found", sandbox_root) == nspawn_pid
    machines.wait_ssh_ready("found", 30, sandbox_root)

    os.kill(nspawn_pid, signal.SIGKILL)  # the container's init lives on without it
    orphan = None
    for _ in range(100):
        orphan = machines.find_machine_process("found", sandbox_root)
        if orphan is not None and not orphan.is_nspawn:
            break
        time.sleep(0.05)
    assert orphan is not None and not orphan.is_nspawn
    assert machines.machine_status("found", sandbox_root) == machines.RUNNING
    with pytest.raises(StageFailed, match="still has machines attached"):
        network.remove_bridge(net.network)

    machines.stop_machine("found", sandbox_root)
    assert machines.machine_status("found", sandbox_root) == machines.STOPPED
    assert not veth_exists("found")
    network.remove_bridge(net.network)


def test_volumes_are_bind_mounted(make_net, make_machine, sandbox_root, tmp_path, known_hosts, ssh):
    data = tmp_path / "uploads"
    data.mkdir()
    (data / "from-host.txt").write_text("host side\n")
    net = make_net()
    spec = make_machine("vol", net, 80, volumes={str(data): "/srv/uploads"})
    machines.wait_ssh_ready("vol", 30, sandbox_root)
    result = ssh(
        spec.ip,
        "cat /srv/uploads/from-host.txt && echo machine side > /srv/uploads/from-machine.txt",
        known_hosts(spec),
    )
    assert result.stdout == "host side\n", result.stderr
    assert (data / "from-machine.txt").read_text() == "machine side\n"


POSTGRES_AND_NGINX = (
    "systemctl is-enabled postgresql nginx; systemctl is-active postgresql || true;"
    " systemctl enable --now postgresql nginx >/dev/null 2>&1;"
    " runuser -u postgres -- psql -tAc 'select 40 + 2';"
    " curl -s -o /dev/null -w '%{http_code}\\n' http://127.0.0.1/;"
    " python3 -c 'import psycopg2, flask; print(\"modules ok\")'"
)


def test_middleware_starts_only_when_enabled(
    make_net, make_machine, sandbox_root, legacy_image, known_hosts, ssh
):
    net = make_net()
    spec = make_machine("mw", net, 90, image=legacy_image)
    machines.wait_ssh_ready("mw", 30, sandbox_root)
    result = ssh(spec.ip, POSTGRES_AND_NGINX, known_hosts(spec))
    assert result.stdout.split("\n") == [
        "disabled",
        "disabled",
        "inactive",
        "42",
        "200",
        "modules ok",
        "",
    ], result.stderr


def test_ensure_bridge_is_idempotent_and_keeps_its_range(make_net) -> None:
    net = make_net()
    assert network.ensure_bridge(net.network, f"{net.gateway}/24") == net.bridge
    rules = subprocess.run(["ip", "rule", "show"], capture_output=True, text=True, check=True)
    assert rules.stdout.count(f"iif {net.bridge} ") == 1
    [bridge] = [b for b in network.list_bridges() if b.name == net.bridge]
    assert [str(i) for i in bridge.interfaces] == [f"{net.gateway}/24"]
    with pytest.raises(StageFailed, match="already carries"):
        network.ensure_bridge(net.network, "10.250.199.1/24")
    with pytest.raises(GuardRefused, match="overlaps"):
        network.ensure_bridge("t-overlap", f"{net.prefix}.129/25")
    assert not Path("/sys/class/net", network.bridge_name("t-overlap")).exists()
