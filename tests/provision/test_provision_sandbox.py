"""migrate preview / provision / destroy on the sandbox, with the real engine and machines."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from migrate.orchestrate import pipeline
from migrate.stages.provision import stack_outputs
from tests.conftest import edit

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

SYSTEM = "rsj-sbcx"


@pytest.fixture
def provisioned(sandbox_estate: Path, run_cli):
    try:
        yield sandbox_estate
    finally:
        run_cli("destroy", sandbox_estate, "--system", SYSTEM, "--yes")


def stacks(result) -> dict:
    return {s["stack"]: s for s in json.loads(result.stdout)["stacks"]}


def ssh(estate: Path, address: str, host_key: str, command: str) -> subprocess.CompletedProcess:
    known_hosts = estate / ".migrate" / "test_known_hosts"
    known_hosts.write_text(f"{address} {host_key}\n")
    key = estate / ".migrate" / "sandbox" / "operator_ed25519"
    return subprocess.run(
        ["ssh", "-i", str(key), "-o", "StrictHostKeyChecking=yes", "-o",
         f"UserKnownHostsFile={known_hosts}", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
         f"root@{address}", command], capture_output=True, text=True, timeout=30, check=False)


def test_provision_is_idempotent_previews_edits_and_destroys(provisioned, run_cli):
    estate = provisioned
    first = run_cli("provision", estate, "--system", SYSTEM, "--yes", "--output", "json")
    assert first.code == 0, first.stderr
    created = stacks(first)
    assert set(created) == {"net-rsj-egov_extranet", f"sys-{SYSTEM}"}
    assert created[f"sys-{SYSTEM}"]["changes"].get("create", 0) >= 4
    instances = created[f"sys-{SYSTEM}"]["outputs"]["instances"]
    assert set(instances) == {"web", "db"}
    plan = json.loads((estate / ".migrate/plan.json").read_text())
    planned = {i["name"]: i["address"] for s in plan["systems"] if s["id"] == SYSTEM
               for i in s["instances"]}
    assert {n: i["address"] for n, i in instances.items()} == planned
    for instance in instances.values():
        login = ssh(estate, instance["address"], instance["host_key"], "cat /etc/hostname")
        assert login.returncode == 0, login.stderr

    second = run_cli("provision", estate, "--system", SYSTEM, "--yes", "--output", "json")
    assert second.code == 0, second.stderr
    assert json.loads(second.stdout)["changed"] is False

    edit(estate / "systems" / f"{SYSTEM}.yaml", "{from: web, to: db, port: 5432}",
         "{from: web, to: db, port: 5432}\n    - {from: web, to: db, port: 6432}")
    preview = run_cli("preview", estate, "--system", SYSTEM, "--output", "json")
    assert preview.code == 0, preview.stderr
    changes = stacks(preview)[f"sys-{SYSTEM}"]["changes"]
    assert changes.get("update", 0) + changes.get("replace", 0) + changes.get("create", 0) >= 1

    # what destroy would delete, asked of the real engine, changing nothing
    context = pipeline.open_context(estate)
    would = pipeline.run_stacks(context, "preview_destroy", [SYSTEM])
    assert {r.stack: {step["op"] for step in r.resources} for r in would.results} == {
        "net-rsj-egov_extranet": {"delete"}, f"sys-{SYSTEM}": {"delete"}}
    assert len(next(r for r in would.results if r.stack == f"sys-{SYSTEM}").resources) >= 4
    assert stack_outputs(context.state_dir, "sandbox", f"sys-{SYSTEM}")["instances"]

    gone = run_cli("destroy", estate, "--system", SYSTEM, "--yes", "--output", "json")
    assert gone.code == 0, gone.stderr
    links = subprocess.run(["ip", "-j", "link"], capture_output=True, text=True, check=True)
    names = {link["ifname"] for link in json.loads(links.stdout)}
    assert not any(name.startswith("vb-rsj-sbcx-w") for name in names)
    assert not any(name.startswith("mg-rsj-eg") for name in names)

