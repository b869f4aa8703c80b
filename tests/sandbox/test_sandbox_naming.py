"""Naming rules for bridges and machines (no root needed)."""

from __future__ import annotations

import re

import pytest

from migrate.rehearsal.sandbox.layout import MACHINE_NAME_MAX, machine_name, veth_name
from migrate.rehearsal.sandbox.network import (
    IFNAMSIZ,
    bridge_name,
    is_project_bridge_name,
    short_name,
)

SAFE = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def test_short_names_are_kept() -> None:
    assert machine_name("web1") == "web1"
    assert machine_name("rsj-sbcx-db1") == "rsj-sbcx-db1"  # exactly 12
    assert bridge_name("egov") == "mg-egov"


@pytest.mark.parametrize(
    "name",
    ["rsj-sbcx-web1-new", "社会保险查询系统", "UPPER_case name", "-leading", "a" * 80],
)
def test_long_or_unsafe_machine_names_shorten_to_valid_veth(name: str) -> None:
    short = machine_name(name)
    assert len(short) <= MACHINE_NAME_MAX
    assert SAFE.match(short)
    assert len(veth_name(name)) <= IFNAMSIZ
    assert machine_name(name) == short  # deterministic


def test_distinct_long_names_stay_distinct() -> None:
    names = [f"rsj-sbcx-web-{index}" for index in range(50)]
    assert len({machine_name(n) for n in names}) == len(names)


def test_long_name_keeps_a_readable_prefix() -> None:
    assert machine_name("rsj-sbcx-web1-new").startswith("rsj-sb")


@pytest.mark.parametrize("network", ["egov_extranet", "internet", "rsj-sbcx-extranet-zone"])
def test_bridge_names_fit_and_are_ours(network: str) -> None:
    device = bridge_name(network)
    assert device.startswith("mg-")
    assert len(device) <= IFNAMSIZ
    assert is_project_bridge_name(device)
    assert bridge_name(device) == device  # idempotent on bridge names


def test_foreign_interfaces_are_not_ours() -> None:
    for device in ("eth0", "docker0", "br-1234", "mg-", "mg-UPPER", "mg-much-too-long-1"):
        assert not is_project_bridge_name(device)


def test_short_name_respects_any_limit() -> None:
    for limit in range(6, 16):
        assert len(short_name("x" * 40, limit)) <= limit


def test_every_platform_name_the_model_accepts_is_its_own_machine_name() -> None:
    """sandbox.platform_machine is used as it is: the model accepts only names the machine
    layer keeps unchanged (no hash suffix), and refuses what it would have to shorten."""
    from migrate.core.model import MACHINE_NAME_PATTERN

    for name in ("exchange", "tc-exchange", "x", "city2-xchg12"):
        assert re.fullmatch(MACHINE_NAME_PATTERN, name) and machine_name(name) == name
    for name in ("exchange-city2", "Exchange", "x-", "-x", "ex_change", "交换平台"):
        assert not re.fullmatch(MACHINE_NAME_PATTERN, name), name


def test_a_machine_name_another_sandbox_runs_is_refused_before_its_veth_is_touched(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two sandbox roots, one machine name: the second start would delete the running
    machine's veth (vb-NAME, the host's) as a stale one; it is refused instead."""
    from migrate.core.errors import StageFailed
    from migrate.rehearsal.sandbox import machines

    processes = {
        101: ["/usr/bin/systemd-nspawn", "--quiet", "-M", "exchange", "--boot"],
        102: ["/usr/bin/python3", "-M", "tc-exchange"],  # not a machine
    }
    monkeypatch.setattr(machines, "all_pids", lambda: list(processes))
    monkeypatch.setattr(machines, "cmdline", processes.get)
    machines._refuse_name_in_use("tc-exchange")
    with pytest.raises(StageFailed, match=r"exchange is in use .* pid 101") as refused:
        machines._refuse_name_in_use("exchange")
    assert "sandbox.platform_machine" in refused.value.hint
