"""Fixtures that boot real sandbox machines on test-only bridges, cleaned up by id."""

from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from migrate.core.errors import EnvironmentNotReady, GuardRefused
from migrate.rehearsal.sandbox import hostkeys, images, machines, network
from migrate.rehearsal.sandbox.host import require_host

_counter = itertools.count()


@dataclass(frozen=True)
class TestNet:
    network: str  # network name given to ensure_bridge
    bridge: str  # device
    prefix: str  # "10.250.N"

    def address(self, host: int) -> str:
        return f"{self.prefix}.{host}/24"

    @property
    def gateway(self) -> str:
        return f"{self.prefix}.1"


@pytest.fixture(scope="session")
def host_ready() -> None:
    try:
        require_host()
    except EnvironmentNotReady as error:
        pytest.skip(f"sandbox tests need root and the sandbox tools: {error.message}")


@pytest.fixture(scope="session")
def cloud_image(host_ready: None) -> Path:
    return images.ensure_image("cloud")


@pytest.fixture(scope="session")
def legacy_image(host_ready: None) -> Path:
    return images.ensure_image("legacy")


@pytest.fixture
def sandbox_root(tmp_path: Path) -> Path:
    root = tmp_path / "sandbox"
    root.mkdir()
    return root


@pytest.fixture(scope="session")
def operator_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    return hostkeys.ensure_client_keypair(tmp_path_factory.mktemp("operator") / "id_ed25519")


@pytest.fixture
def make_net(host_ready: None) -> Iterator[Callable[[], TestNet]]:
    """Create test bridges on free 10.250.N.0/24 networks; removes exactly those."""
    created: list[str] = []

    def make() -> TestNet:
        for _ in range(50):
            index = next(_counter)
            third = 200 + (os.getpid() + index) % 50
            name = f"t{os.getpid() % 100000}-{index}"
            try:
                bridge = network.ensure_bridge(name, f"10.250.{third}.1/24")
            except GuardRefused:  # that network is in use on this host: try the next
                continue
            created.append(name)
            return TestNet(name, bridge, f"10.250.{third}")
        raise RuntimeError("no free 10.250.N.0/24 network for a test bridge")

    yield make
    for name in created:
        network.remove_bridge(name, force=True)


@pytest.fixture
def make_machine(
    make_net: Callable[[], TestNet],  # so machines are destroyed before their bridges
    cloud_image: Path,
    sandbox_root: Path,
    operator_key: tuple[Path, str],
) -> Iterator[Callable[..., machines.MachineSpec]]:
    """Create (and by default start) machines; destroys exactly those afterwards."""
    created: list[str] = []

    def make(
        name: str,
        net: TestNet,
        host: int,
        start: bool = True,
        image: Path | None = None,
        **extra: object,
    ) -> machines.MachineSpec:
        spec = machines.MachineSpec(
            name=name,
            image=str(image or cloud_image),
            bridge=net.network,
            address=net.address(host),
            gateway=net.gateway,
            authorized_keys=operator_key[1],
            **extra,  # type: ignore[arg-type]
        )
        created.append(name)
        machines.create_machine(spec, sandbox_root)
        if start:
            machines.start_machine(name, sandbox_root)
        return spec

    yield make
    for name in created:
        machines.destroy_machine(name, sandbox_root)


@pytest.fixture
def known_hosts(tmp_path: Path, sandbox_root: Path) -> Callable[..., Path]:
    def write(*specs: machines.MachineSpec) -> Path:
        entries = [hostkeys.known_hosts_line(s.name, s.ip, sandbox_root) for s in specs]
        return hostkeys.write_known_hosts(tmp_path / "known_hosts", entries)

    return write


@pytest.fixture
def ssh(operator_key: tuple[Path, str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run a command on a machine with host key checking on (guard first)."""

    def run(address: str, command: str, known_hosts_file: Path) -> subprocess.CompletedProcess[str]:
        network.assert_local_address(address)
        return subprocess.run(
            [
                "ssh",
                "-F",
                "/dev/null",
                "-i",
                str(operator_key[0]),
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                f"UserKnownHostsFile={known_hosts_file}",
                "-o",
                "GlobalKnownHostsFile=/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=10",
                f"root@{address}",
                command,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            stdin=subprocess.DEVNULL,
        )

    return run
