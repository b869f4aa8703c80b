"""Host checks, image recipes and machine files, without root."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from migrate.core.errors import EnvironmentNotReady, GuardRefused, StageFailed
from migrate.rehearsal.sandbox import host, hostkeys, images, machines
from migrate.rehearsal.sandbox.host import find_tool

needs_ssh_keygen = pytest.mark.skipif(
    find_tool("ssh-keygen") is None, reason="ssh-keygen (openssh-client) is not installed"
)


def test_require_host_names_the_debian_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host, "find_tool", lambda name: None)
    with pytest.raises(EnvironmentNotReady) as caught:
        host.require_host()
    for package in ("systemd-container", "debootstrap", "iproute2", "openssh-client"):
        assert package in (caught.value.hint or "")
    assert "systemd-nspawn" in caught.value.message


def test_require_host_refuses_non_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(EnvironmentNotReady, match="needs root"):
        host.require_host()


def test_roots_come_from_argument_then_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MIGRATE_SANDBOX_ROOT", raising=False)
    monkeypatch.delenv("MIGRATE_IMAGE_CACHE", raising=False)
    assert host.sandbox_root() == Path("/var/lib/migrate/sandbox")
    assert images.image_cache() == Path("/var/cache/migrate/images")
    monkeypatch.setenv("MIGRATE_SANDBOX_ROOT", str(tmp_path / "env"))
    monkeypatch.setenv("MIGRATE_IMAGE_CACHE", str(tmp_path / "cache"))
    assert host.sandbox_root() == tmp_path / "env"
    assert host.sandbox_root(tmp_path / "arg") == tmp_path / "arg"
    assert images.image_path("cloud").parent == tmp_path / "cache"


def test_image_names_carry_a_digest_of_the_recipe() -> None:
    cloud, legacy = images.recipe("cloud"), images.recipe("legacy")
    assert cloud.digest() != legacy.digest()
    assert cloud.digest() == images.recipe("cloud").digest()
    assert images.image_path("cloud", "/c").name == f"cloud-{cloud.digest()}"
    assert set(cloud.packages) <= set(legacy.packages)
    for package in ("systemd", "openssh-server", "postgresql", "nginx-light", "python3"):
        assert package in cloud.packages
    assert "postgresql.service" in cloud.disabled_units
    with pytest.raises(GuardRefused, match="unknown sandbox image"):
        images.recipe("windows")


def spec(**changes: object) -> machines.MachineSpec:
    values: dict = {
        "name": "rsj-sbcx-web1-new",
        "image": "cloud",
        "bridge": "t-units",
        "address": "10.250.9.10/24",
        "gateway": "10.250.9.1",
        "authorized_keys": "ssh-ed25519 AAAAkey operator",
        "volumes": {"/srv/data": "/srv/sbcx/uploads"},
        "masked_units": ("postgresql.service",),
    }
    values.update(changes)
    return machines.MachineSpec(**values)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"address": "10.250.9.10"}, "needs a prefix"),
        ({"gateway": "10.250.8.1"}, "must be another address"),
        ({"gateway": "10.250.9.10"}, "must be another address"),
        ({"address": "not-an-ip/24"}, "bad address"),
        ({"volumes": {"relative": "/x"}}, "absolute"),
    ],
)
def test_invalid_specs_are_refused(changes: dict, message: str) -> None:
    with pytest.raises(StageFailed, match=message):
        machines._validate(spec(**changes))


@needs_ssh_keygen
def test_machine_files_land_in_the_upper_dir(tmp_path: Path) -> None:
    machine = spec()
    machines._write_machine_files(machine, tmp_path)
    unit = (tmp_path / "etc/systemd/system/migrate-address.service").read_text()
    assert "ip addr replace 10.250.9.10/24 dev host0" in unit
    assert "ip route replace default via 10.250.9.1" in unit
    assert "Before=network.target ssh.service" in unit
    wants = tmp_path / "etc/systemd/system/multi-user.target.wants/migrate-address.service"
    assert wants.is_symlink()
    assert os.readlink(tmp_path / "etc/systemd/system/postgresql.service") == "/dev/null"
    assert (tmp_path / "etc/hostname").read_text() == f"{machine.machine}\n"
    keys = tmp_path / "root/.ssh/authorized_keys"
    assert keys.read_text() == "ssh-ed25519 AAAAkey operator\n"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "root/.ssh").stat().st_mode) == 0o700
    host_key = tmp_path / "etc/ssh/ssh_host_ed25519_key"
    assert stat.S_IMODE(host_key.stat().st_mode) == 0o600
    first_key = hostkeys.host_public_key(tmp_path)
    machines._write_machine_files(machine, tmp_path)  # re-create keeps the identity
    assert hostkeys.host_public_key(tmp_path) == first_key


def test_nspawn_command_shares_the_image_read_only(tmp_path: Path) -> None:
    record = {
        "image_dir": "/img/cloud-x",
        "machine": "web1",
        "machine_id": "0123456789abcdef0123456789abcdef",
        "bridge": "mg-t",
        "volumes": {"/srv/a": "/data"},
    }
    command = machines.nspawn_command(record, tmp_path / "upper")
    assert f"--overlay=/img/cloud-x:{tmp_path / 'upper'}:/" in command
    for flag in ("--register=no", "--boot", "--network-bridge=mg-t", "--console=read-only"):
        assert flag in command
    assert "--bind=/srv/a:/data" in command
    assert command[command.index("-M") + 1] == "web1"
    assert "--uuid=0123456789abcdef0123456789abcdef" in command


@needs_ssh_keygen
def test_client_keypair_is_private_and_stable(tmp_path: Path) -> None:
    private, public = hostkeys.ensure_client_keypair(tmp_path / "keys/operator")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert public.startswith("ssh-ed25519 ")
    os.chmod(private, 0o644)
    again, public_again = hostkeys.ensure_client_keypair(private)
    assert public_again == public
    assert stat.S_IMODE(again.stat().st_mode) == 0o600


def test_known_hosts_file_holds_exactly_the_entries(tmp_path: Path) -> None:
    line = hostkeys.known_hosts_entry("10.250.1.10", "ssh-ed25519 AAAAC3Nz root@web1")
    assert line == "10.250.1.10 ssh-ed25519 AAAAC3Nz"
    path = hostkeys.write_known_hosts(tmp_path / "known_hosts", [line, "10.250.1.11 k v\n"])
    assert path.read_text() == "10.250.1.10 ssh-ed25519 AAAAC3Nz\n10.250.1.11 k v\n"


def test_image_build_lock_excludes_other_processes(tmp_path: Path) -> None:
    target = tmp_path / "cloud-abc"
    probe = (
        "import fcntl, sys\n"
        "handle = open(sys.argv[1], 'w')\n"
        "try:\n"
        "    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "except BlockingIOError:\n"
        "    sys.exit(3)\n"
    )
    lock_file = str(tmp_path / ".cloud-abc.lock")
    with images._build_lock(target):
        held = subprocess.run([sys.executable, "-c", probe, lock_file], check=False)
        assert held.returncode == 3
    free = subprocess.run([sys.executable, "-c", probe, lock_file], check=False)
    assert free.returncode == 0


def test_stale_builds_are_discarded_and_finished_images_recognised(tmp_path: Path) -> None:
    target = tmp_path / "cloud-abc"
    stale = tmp_path / ".cloud-abc.tmp-999999"
    (stale / "etc").mkdir(parents=True)
    (stale / "etc/half-written").write_text("x")
    images._remove_stale_builds(target)
    assert not stale.exists()
    assert not images.is_built(target)
    (target / "usr/lib").mkdir(parents=True)
    (target / "usr/lib/os-release").write_text("ID=debian\n")
    assert images.is_built(target)


def test_banner_reader_refuses_addresses_off_the_host() -> None:
    with pytest.raises(GuardRefused):
        machines.read_ssh_banner("not-an-address")


def test_nspawn_command_stacks_layers_between_the_image_and_the_upper_dir(
        tmp_path: Path) -> None:
    record = {"image_dir": "/img/legacy-x", "machine": "wiki", "machine_id": "0" * 32,
              "bridge": "mg-t", "layers": ["/var/cache/migrate/foreign/d/upper"]}
    command = machines.nspawn_command(record, tmp_path / "upper")
    assert (f"--overlay=/img/legacy-x:/var/cache/migrate/foreign/d/upper:{tmp_path / 'upper'}:/"
            in command)
