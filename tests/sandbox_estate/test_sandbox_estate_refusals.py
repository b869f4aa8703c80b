"""sandbox up refuses bad input before it changes anything on the host or in the estate."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from migrate.core.errors import GuardRefused, InvalidInput
from migrate.orchestrate.pipeline import open_estate
from migrate.rehearsal.sandbox import network
from migrate.rehearsal.sandbox.estate import sandbox_down, sandbox_status, sandbox_up
from migrate.rehearsal.sandbox.estate_record import records_dir
from tests.sandbox_estate.conftest import copy_estate, edit, host_snapshot

pytestmark = [pytest.mark.sandbox]
NOT_A_KEY = "long enough, but not a key\n"  # a short one is refused before: too short


@pytest.fixture
def folder(sandbox_env: Path, tmp_path: Path) -> Iterator[Path]:
    target = copy_estate(tmp_path / "estate")
    yield target
    sandbox_down(open_estate(target))  # a refused up must have nothing to take down


def assert_untouched(folder: Path, root: Path, before: dict) -> None:
    assert host_snapshot(root) == before
    assert not (folder / "secrets").exists()
    assert not (folder / "certs").exists()
    assert not (folder / ".migrate").exists()


def test_address_on_the_uplink_is_refused_by_the_guard(folder: Path, sandbox_env: Path) -> None:
    edit(folder / "systems" / "rsj-ldjc.yaml", "192.168.10.40", "192.0.2.10")
    edit(folder / "migrate.yaml", "allowed_networks: []", "allowed_networks: [192.0.2.0/24]")
    estate = open_estate(folder)
    before = host_snapshot(sandbox_env)
    with pytest.raises(GuardRefused, match=r"192\.0\.2\.10"):
        sandbox_up(estate)
    assert_untouched(folder, sandbox_env, before)


def test_openstack_target_is_refused_with_its_line(folder: Path, sandbox_env: Path) -> None:
    edit(folder / "migrate.yaml", "target: sandbox", "target: openstack")
    before = host_snapshot(sandbox_env)
    with pytest.raises(InvalidInput) as caught:
        sandbox_up(open_estate(folder))
    problem = caught.value.problems[0]
    assert problem.path == "cloud.target" and problem.line == 6
    assert "sandbox" in problem.message
    assert_untouched(folder, sandbox_env, before)


def test_missing_exchange_network_names_migrate_yaml(folder: Path, sandbox_env: Path) -> None:
    edit(folder / "migrate.yaml",
         "  network: 10.40.0.0/24                    # 交换平台前置区\n", "")
    before = host_snapshot(sandbox_env)
    with pytest.raises(InvalidInput) as caught:
        sandbox_up(open_estate(folder))
    problem = caught.value.problems[0]
    assert problem.file.endswith("migrate.yaml") and problem.path == "exchange.network"
    assert_untouched(folder, sandbox_env, before)


def test_a_bridge_another_estate_owns_is_refused(folder: Path, sandbox_env: Path) -> None:
    other = records_dir(sandbox_env) / "00000000-other.json"
    other.parent.mkdir(parents=True, exist_ok=True)
    other.write_text(json.dumps({
        "version": 1, "estate_id": "00000000-other", "estate": "另一个市",
        "estate_root": "/srv/other-estate", "machines": [],
        "bridges": [{"network": "x10-40-0", "device": "mg-x10-40-0", "cidr": "10.40.0.0/24",
                     "gateway": "10.40.0.1/24", "role": "exchange"}]}))
    before = host_snapshot(sandbox_env)
    try:
        with pytest.raises(GuardRefused, match=r"mg-x10-40-0.*another estate.*/srv/other-estate"):
            sandbox_up(open_estate(folder))
        assert_untouched(folder, sandbox_env, before)
    finally:
        other.unlink()


def test_a_bridge_nobody_owns_is_refused(folder: Path, sandbox_env: Path) -> None:
    network.ensure_bridge("o10-30-0", "10.30.0.1/24")
    try:
        before = host_snapshot(sandbox_env)
        with pytest.raises(GuardRefused, match="mg-o10-30-0 already exists"):
            sandbox_up(open_estate(folder))
        assert_untouched(folder, sandbox_env, before)
        assert sandbox_status(open_estate(folder)).machines == []
    finally:
        network.remove_bridge("o10-30-0")


def test_a_key_secret_that_is_no_key_is_refused_and_kept(folder: Path, sandbox_env: Path
                                                         ) -> None:
    secrets = folder / "secrets"
    secrets.mkdir(mode=0o700)
    (secrets / "ssh-rsj").write_text(NOT_A_KEY)
    (secrets / "ssh-rsj").chmod(0o600)
    before = host_snapshot(sandbox_env)
    with pytest.raises(InvalidInput) as caught:
        sandbox_up(open_estate(folder))
    assert "not an unencrypted OpenSSH private key" in caught.value.problems[0].message
    assert (secrets / "ssh-rsj").read_text() == NOT_A_KEY
    assert sorted(p.name for p in secrets.iterdir()) == ["ssh-rsj"]
    assert host_snapshot(sandbox_env) == before
