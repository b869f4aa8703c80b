"""``migrate run`` on the test cloud, end to end: the sandbox's department server rooms,
exchange platform and package mirror on this host around the all-in-one OpenStack
(``sandbox.surroundings: true``), two systems moved from sandbox legacy machines to OpenStack
instances: mzj-tcjz (level 2, its data on volumes the instance mounts by serial) and wjw-tcbj
(level 3, every volume encrypted by the cloud's LUKS volume type).

One test, in the order an operator meets it: the first run moves both systems, but
wjw-tcbj's manifest forgot the flow from the exchange platform to its service, so its
verification fails (the platform's probe of the registered endpoint is dropped by the
security group) and it is rolled back while mzj-tcjz completes: provisioned, transferred,
cut over, verified, registered. With the flow back and the plan reviewed again
(``--replan``), the next run adds the rule and cuts wjw-tcbj over again; a third run changes
nothing; ``migrate destroy`` and ``sandbox down`` leave the project's OpenStack resources
exactly as they were, counted through the API. The host reaches the department networks
through their routers' gateways (``RouteKeeper``: the city's network team's part), and
nothing leaves the host.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from migrate.rehearsal.testcloud import api, routes, services
from tests.conftest import edit
from tests.run import events
from tests.run.events import journal
from tests.run.test_run_faults import source_health
from tests.run.test_run_sandbox import report_timings, secrets_written
from tests.testcloud.conftest import cloud_resources, holding_again

pytestmark = [pytest.mark.slow, pytest.mark.sandbox]
ESTATE = Path(__file__).parent / "run_estate"
# the example estate's mzj-shjz and wjw-fybj under ids of the test cloud's own, so that
# their sandbox machines never meet the other tests' (scripts/test.sh runs both at once)
LEVEL_TWO, LEVEL_THREE = "mzj-tcjz", "wjw-tcbj"


@pytest.fixture
def run_estate(tmp_path: Path, clouds_yaml: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the run estate with an operator key and a stack passphrase of its own;
    sandbox machines under a root of the test's own."""
    from migrate.adapters.engine import find_engine

    if find_engine() is None:
        pytest.skip("the Pulumi engine is not built: run 'make engine'")
    estate = tmp_path / "estate"
    shutil.copytree(ESTATE, estate)
    (estate / "keys").mkdir(mode=0o700)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "operator@testcloud",
                    "-f", str(estate / "keys" / "operator")], check=True)
    state = estate / ".migrate"
    state.mkdir(mode=0o700)
    passphrase = state / "pulumi-passphrase"
    passphrase.write_text(os.urandom(18).hex() + "\n")
    passphrase.chmod(0o600)
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds_yaml))
    monkeypatch.setenv("MIGRATE_SANDBOX_ROOT", str(tmp_path / "sandbox-root"))
    return estate


@pytest.fixture
def routed(clouds_yaml: Path, run_estate: Path) -> Iterator[routes.RouteKeeper]:
    """Host routes to the estate's department networks while the test runs."""
    zones = [z["cidr"] for z in
             yaml.safe_load((run_estate / "migrate.yaml").read_text())["cloud"]["zones"].values()]

    def session() -> api.Session:
        clouds = yaml.safe_load(clouds_yaml.read_text())
        return api.Session.from_cloud(clouds["clouds"][services.CLOUD_NAME]).authenticate()

    with routes.RouteKeeper(session, zones) as keeper:
        yield keeper


def stands(run_cli, estate: Path) -> dict[str, dict]:
    status = json.loads(run_cli("status", estate, "--output", "json").stdout)
    return {s["id"]: s for s in status["systems"]}


FLOW = "  flows:\n    - {from: exchange, to: app, port: 8080}\n"


@pytest.mark.timeout(2700)  # three runs on instances emulated by qemu (TCG)
def test_migrate_run_on_openstack_rolls_back_moves_then_changes_nothing(
        run_estate: Path, routed: routes.RouteKeeper, session: api.Session, run_cli) -> None:
    estate = run_estate
    manifest = estate / "systems" / f"{LEVEL_THREE}.yaml"
    edit(manifest, FLOW, "  flows: []   # the flow from the exchange platform is forgotten\n")
    before = cloud_resources(session)
    try:
        first_run(estate, run_cli)
        edit(manifest, "  flows: []   # the flow from the exchange platform is forgotten\n",
             FLOW)
        second_run(estate, run_cli)
        unchanged_run(estate, run_cli)
    finally:
        destroyed = run_cli("destroy", estate, "--yes", "--leave-source-traces")  # sources next
        run_cli("sandbox", "down", estate)
    assert destroyed.code == 0, destroyed.stderr
    after = holding_again(session, before)
    assert after == before, {kind: sorted(after[kind] ^ before[kind]) for kind in before
                             if after[kind] != before[kind]}
    assert routed.made, "no department network was routed: the run reached no instance?"


def first_run(estate: Path, run_cli) -> None:
    """Both systems: mzj-tcjz moves; wjw-tcbj is cut over, fails its verification (the
    platform cannot reach it) and is rolled back: its source serves again."""
    started = time.monotonic()
    done = run_cli("run", estate, "--yes", "--output", "json")
    summary = json.loads(done.stdout)
    report_timings(f"openstack: first run ({time.monotonic() - started:.0f} s)", summary)
    assert done.code == 4, done.stderr
    systems = {s["system"]: s for s in summary["systems"]}
    assert systems[LEVEL_TWO]["outcome"] == "done", (systems[LEVEL_TWO].get("error") or {}).get(
        "message", systems[LEVEL_TWO])  # whole: the estate is gone by the time CI is read
    assert_replicated_through_the_tunnel(estate, LEVEL_TWO, "shjz")
    failed = systems[LEVEL_THREE]
    assert failed["rolled_back"] is True, failed
    assert "reverse_probe_reaches_system" in failed["error"]["message"], failed["error"]
    assert [e["result"] for e in events.ended(estate, "verify", LEVEL_THREE, 0)] == ["failed"]
    assert [e["result"] for e in events.ended(estate, "cutover", LEVEL_THREE, 0)] == ["ok"]
    assert source_health(estate, LEVEL_THREE) == 200
    now = stands(run_cli, estate)
    assert now[LEVEL_TWO]["flags"]["cut_over"] and now[LEVEL_TWO]["flags"]["verified"]
    evidence = (estate / "runbooks" / "evidence" / f"{LEVEL_TWO}.md").read_text()
    assert "pass 通过" in evidence and "FAIL 未通过" not in evidence
    assert not secrets_written(estate, done.stdout, done.stderr)


def assert_replicated_through_the_tunnel(estate: Path, system: str, database: str) -> None:
    """The database was kept in step by logical replication until the cutover: through the
    replication tunnel (no rule opened the source's 5432), closed again by the cutover."""
    (transfer,) = [e for e in journal(estate) if e["stage"] == "transfer"
                   and e["system"] == system and e["result"] in ("ok", "changed")]
    assert transfer["outputs"]["databases"][database]["method"] == "logical_replication"
    plan = json.loads((estate / ".migrate" / "plan.json").read_text())
    (planned,) = [s for s in plan["systems"] if s["id"] == system]
    assert not [r for r in planned["security_rules"] if r["port"] == 5432
                and r["peer"]["kind"] == "source_host"], planned["security_rules"]
    (cutover,) = [e for e in journal(estate) if e["stage"] == "cutover"
                  and e["system"] == system and e["result"] == "ok"]
    assert cutover["outputs"]["databases"][database]["equal"] is True


def second_run(estate: Path, run_cli) -> None:
    """The flow is back: refused until the plan is reviewed again, then the rule is added
    and wjw-tcbj is cut over again, verified (its volumes encrypted by the cloud) and
    registered; mzj-tcjz is left as it is."""
    refused = run_cli("run", estate, "--yes", "--output", "json")
    assert refused.code == 2 and "exchange" in refused.stdout, refused.stdout
    started = time.monotonic()
    done = run_cli("run", estate, "--yes", "--replan", "--output", "json")
    summary = json.loads(done.stdout)
    report_timings(f"openstack: second run ({time.monotonic() - started:.0f} s)", summary)
    assert done.code == 0, done.stderr
    systems = {s["system"]: s for s in summary["systems"]}
    stages = {s["stage"]: s["result"] for s in systems[LEVEL_TWO]["stages"]}
    assert stages["transfer"] == stages["cutover"] == "skipped", stages
    now = stands(run_cli, estate)
    for sid in (LEVEL_TWO, LEVEL_THREE):
        flags = now[sid]["flags"]
        assert flags["cut_over"] and flags["verified"] and now[sid]["failure"] is None, now[sid]
    assert_evidence_tells_the_failure_then_the_pass(estate)
    report = json.loads(next(Path(p) for p in summary["files"]["report"]
                             if str(p).endswith(".json")).read_text())
    assert report["figures"]["connectivity"]["connected"] == 2, report["figures"]
    assert not secrets_written(estate, done.stdout, done.stderr)


def assert_evidence_tells_the_failure_then_the_pass(estate: Path) -> None:
    """wjw-tcbj's evidence runbook keeps both verifications: the failed probe, then every
    check passing; the last verification's kept result names the cloud's encryption."""
    evidence = (estate / "runbooks" / "evidence" / f"{LEVEL_THREE}.md").read_text()
    verify = evidence[evidence.index("## 验证 Verify"):evidence.index("## 回退 Rollback")]
    assert "结果 Result: 成功" in verify
    probes = [line for line in verify.splitlines()
              if line.startswith("| exchange::reverse_probe_reaches_system |")]
    assert [("FAIL" in p, "pass" in p) for p in probes] == [(True, False), (False, True)]
    last = verify[verify.rindex("| exchange::reverse_probe_reaches_system |"):]
    assert "FAIL 未通过" not in last.split("###")[0]
    results = sorted(estate.glob(f".migrate/runs/*-{LEVEL_THREE}-verify-*/result.json"))
    kept = results[-1].read_text()
    assert "tc-luks" in kept and "luks" in kept, "the encryption's evidence names no type"


def unchanged_run(estate: Path, run_cli) -> None:
    again = run_cli("run", estate, "--yes", "--output", "json")
    summary = json.loads(again.stdout)
    report_timings("openstack: a third run", summary)
    assert again.code == 0, again.stderr
    assert summary["changed_nothing"], summary
    for system in summary["systems"]:
        stages = {s["stage"]: s for s in system["stages"]}
        assert stages["transfer"]["result"] == stages["cutover"]["result"] == "skipped"
    cutovers = {sid: [e["result"] for e in journal(estate)
                      if e["stage"] == "cutover" and e["system"] == sid]
                for sid in (LEVEL_TWO, LEVEL_THREE)}
    assert cutovers == {LEVEL_TWO: ["ok"], LEVEL_THREE: ["ok", "ok"]}, cutovers
    assert run_cli("audit", "verify", estate).code == 0
