"""Fixtures of the sandbox estate tests: a private sandbox root, estate copies, host snapshots."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from migrate.core.errors import EnvironmentNotReady
from migrate.core.loader import Estate
from migrate.rehearsal.sandbox import network
from migrate.rehearsal.sandbox.estate_plan import plan_sandbox
from migrate.rehearsal.sandbox.host import require_host
from migrate.rehearsal.sandbox.layout import machine_dir, veth_name

EXAMPLE_ESTATE = Path(__file__).resolve().parents[2] / "examples" / "estate"


@pytest.fixture(scope="module")
def host_ready() -> None:
    try:
        require_host()
    except EnvironmentNotReady as error:
        pytest.skip(f"sandbox estate tests need root and the sandbox tools: {error.message}")


@pytest.fixture(scope="module")
def sandbox_env(host_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A sandbox root of this module's own (machines and ownership records live there)."""
    root = tmp_path_factory.mktemp("sandbox-root")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MIGRATE_SANDBOX_ROOT", str(root))
        patch.delenv("MIGRATE_STATE_DIR", raising=False)
        yield root


def copy_estate(target: Path) -> Path:
    """A copy of the example estate (manifests only), like tests/conftest.py's ``estate``."""
    shutil.copytree(EXAMPLE_ESTATE, target,
                    ignore=shutil.ignore_patterns(".migrate", "secrets", "certs"))
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {path}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def host_snapshot(root: Path, estate: Estate | None = None) -> dict:
    """What sandbox up may change on the host and sandbox down must restore.

    Other engineers' tests, and another estate's sandbox (scripts/test.sh runs tests/testcloud
    beside these tests), may run machines on this host meanwhile, so with ``estate`` project
    devices (``mg-``/``vb-``), the sandbox's rules, nspawn processes and cgroups are compared
    for this estate's and this root's only; every other interface and rule is compared as a
    whole. Without ``estate`` (quick refusal tests) every interface and rule counts.
    """
    devices, cgroup_keys = _estate_names(root, estate)
    networks = _estate_networks(estate)
    mine = ("mg-", "vb-") if estate is not None else ()
    links = json.loads(subprocess.run(["ip", "-j", "link"], capture_output=True, text=True,
                                      check=True).stdout)
    rules = json.loads(subprocess.run(["ip", "-j", "rule"], capture_output=True, text=True,
                                      check=True).stdout)
    mounts = [line for line in Path("/proc/mounts").read_text().splitlines()
              if str(root) in line]
    records = sorted(p.name for p in (root / "estates").glob("*")) if (
        root / "estates").is_dir() else []
    machines_dir = root / "machines"
    return {
        "links": sorted(link["ifname"] for link in links
                        if not link["ifname"].startswith(mine)
                        or link["ifname"] in devices),
        "rules": sorted(json.dumps(rule, sort_keys=True) for rule in rules
                        if _concerns(rule, estate is not None, devices, networks)),
        "nspawn": sorted(_nspawn_pids(str(root))),
        "mounts": mounts,
        "records": records,
        "machine_dirs": sorted(p.name for p in machines_dir.iterdir())
        if machines_dir.is_dir() else [],
        "cgroups": sorted(str(p) for p in Path("/sys/fs/cgroup").glob("*/**/migrate-sandbox/*")
                          if p.is_dir() and (estate is None or p.name in cgroup_keys)),
    }


SANDBOX_PRIORITIES = (network.LINK_PRIORITY, network.RULE_PRIORITY, network.LINKED_DEVICE_STOP)


def _concerns(rule: dict, estate_only: bool, devices: set[str], networks: set[str]) -> bool:
    """Whether a rule is compared: every rule without an estate; with one, the sandbox's
    rules (its priorities) only when they name this estate's devices or allowed networks (or
    neither), every other rule whatever it names."""
    if not estate_only:
        return True
    iif, dst = rule.get("iif"), rule.get("dst")
    if rule.get("priority") in SANDBOX_PRIORITIES:
        return (iif in devices or f"{dst}/{rule.get('dstlen')}" in networks
                or not (iif or dst))
    return not str(iif or "").startswith(("mg-", "vb-")) or iif in devices


def _estate_networks(estate: Estate | None) -> set[str]:
    return set(estate.settings.sandbox.allowed_networks) if estate is not None else set()


def _estate_names(root: Path, estate: Estate | None) -> tuple[set[str], set[str]]:
    """This estate's bridge and veth devices, and its machines' cgroup names."""
    if estate is None:
        return set(), set()
    plan = plan_sandbox(estate)
    devices = {b.device for b in plan.bridges} | {veth_name(m.name) for m in plan.machines}
    if estate.settings.sandbox.allowed_networks:  # the local devices its links go through
        devices |= set(network.plan_links(estate.settings.sandbox.allowed_networks).devices)
    keys = {f"{m.machine}-"
            f"{hashlib.sha256(str(machine_dir(m.name, root)).encode()).hexdigest()[:8]}"
            for m in plan.machines}
    return devices, keys


def _nspawn_pids(needle: str) -> list[int]:
    """nspawn processes whose command line mentions ``needle`` (the sandbox root)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if argv.split(b"\0")[0].endswith(b"systemd-nspawn") and needle.encode() in argv:
            found.append(int(entry.name))
    return found


def ssh(address: str, user: str, key: Path, known_hosts: Path, command: str,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``command`` on a sandbox machine, host key checked against ``known_hosts``."""
    network.assert_local_address(address)
    return subprocess.run(
        ["ssh", "-F", "/dev/null", "-i", str(key), "-o", "IdentitiesOnly=yes",
         "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known_hosts}",
         "-o", "GlobalKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
         "-o", "ConnectTimeout=10", f"{user}@{address}", command],
        capture_output=True, text=True, timeout=timeout, check=False,
        stdin=subprocess.DEVNULL)
