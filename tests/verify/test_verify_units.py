"""Verification without machines: the context from the example plan and journal evidence,
the JUnit XML parsing, and the pytest subprocess with a suite of checks that pass, fail
and skip (no sandbox, no ssh)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from migrate.adapters.inventory import control_dir
from migrate.orchestrate.pipeline import context_of, make_plan, open_estate
from migrate.stages.register import endpoint_of
from migrate.stages.verify.context import build_context, evidence_of
from migrate.stages.verify.junit import check_id, parse_junit, summarize
from migrate.stages.verify.run import run_pytest, write_ssh_config

SYSTEM = "wjw-fybj"
TARGETS = {"web": {"address": "10.20.53.159", "host_key": "ssh-ed25519 AAAAweb"},
           "db": {"address": "10.20.53.157", "host_key": "ssh-ed25519 AAAAdb comment"}}
MANIFEST = "/srv/fybj/certificates\tab12  ./a.pdf\n/srv/fybj/certificates\tcd34  ./b/c.pdf\n"


def journal_entries(run_id: str) -> list[dict]:
    files = {"web1": {"target": "wjw-fybj-web", "files": 2, "manifest": "sha256:m",
                      "equal": True}}
    tables = {"public.birth_certificates": {"rows": 12, "checksum": "99"}}
    databases = {"fybj": {"source": "db1", "target": "wjw-fybj-db", "tables": tables,
                          "equal": True}}
    return [
        {"stage": "transfer", "system": SYSTEM, "result": "ok", "seq": 3,
         "outputs": {"run_id": "old", "files": files, "databases": databases}},
        {"stage": "cutover", "system": SYSTEM, "result": "ok", "seq": 5,
         "outputs": {"run_id": run_id, "files": files, "databases": databases}},
        {"stage": "cutover", "system": SYSTEM, "result": "failed", "seq": 6,
         "outputs": {"run_id": "broken"}},
        {"stage": "cutover", "system": "other", "result": "ok", "seq": 7, "outputs": {}},
    ]


@pytest.fixture
def planned(estate: Path) -> tuple:
    loaded = open_estate(estate)
    plan = make_plan(context_of(loaded), write=False).plan
    return loaded, next(s for s in plan["systems"] if s["id"] == SYSTEM)


def test_evidence_is_the_latest_successful_cutover_with_its_manifest(tmp_path: Path) -> None:
    folder = tmp_path / "runs" / "r1" / "artifacts" / "cutover" / "manifests"
    folder.mkdir(parents=True)
    (folder / "web1.sha256").write_text(MANIFEST)
    found = evidence_of(journal_entries("r1"), SYSTEM, tmp_path)
    assert (found["stage"], found["run_id"], found["seq"]) == ("cutover", "r1", 5)
    assert found["files"]["web1"]["manifest_text"] == MANIFEST
    assert found["databases"]["fybj"]["tables"]["public.birth_certificates"]["rows"] == 12
    assert evidence_of([], SYSTEM, tmp_path)["stage"] is None


def test_context_from_the_example_plan(planned: tuple, tmp_path: Path) -> None:
    loaded, system = planned
    manifest = loaded.systems[SYSTEM]
    base_url, health = endpoint_of(manifest, system)
    folder = tmp_path / "runs" / "r1" / "artifacts" / "cutover" / "manifests"
    folder.mkdir(parents=True)
    (folder / "web1.sha256").write_text(MANIFEST)
    baseline = {"recorded_at": "2026-11-25T20:00:00+00:00", "source_host": "web1",
                "answers": {"/api/birth-certificates?limit=20&offset=0":
                            {"status": 200, "sha256": "f00", "bytes": 10, "total": 3}}}
    context = build_context(
        system=system, manifest=manifest.model_dump(mode="json"), targets=TARGETS,
        evidence=evidence_of(journal_entries("r1"), SYSTEM, tmp_path), baseline=baseline,
        exchange={"url": "https://exchange.example.gov.cn", "ca_bundle": "ca.pem"},
        sandbox=True, run_dir=str(tmp_path), ssh_config="cfg",
        endpoint={"base_url": base_url, "health_path": health})
    assert context["hosts"]["web"] == {"name": "wjw-fybj-web", "address": "10.20.53.159"}
    web, db = context["ports"]["web"], context["ports"]["db"]
    assert web["planned_ports"] == [22, 8080] and web["operator_allowed"] == [22]
    assert db["planned_ports"] == [22, 5432] and db["operator_allowed"] == [22]
    assert [s["host"] for s in context["services"]] == ["wjw-fybj-web"]
    assert {v["mount"] for v in context["volumes"]} == {"/srv/fybj/certificates",
                                                        "/var/lib/postgresql"}
    tree = context["files"][0]
    assert (tree["host"], tree["manifest_text"], tree["evidence_stage"]) == (
        "wjw-fybj-web", MANIFEST, "cutover")
    assert context["databases"][0]["tables"]["public.birth_certificates"]["checksum"] == "99"
    sample = context["application"]["samples"][0]
    assert sample["path"] == "/api/birth-certificates?limit=20&offset=0"
    assert sample["source"]["sha256"] == "f00" and sample["port"] == 8080
    exchange = context["exchange"]
    assert exchange["endpoint_host"] == "wjw-fybj-web"
    assert exchange["endpoint"] == {"base_url": "http://10.20.53.159:8080",
                                    "health_path": "/health"}
    assert exchange["resources"] == ["3/140/005/0001"]
    assert exchange["hosts"] == ["wjw-fybj-web", "wjw-fybj-db"]
    text = json.dumps(context, ensure_ascii=False)
    assert "secret://" not in text and "app_secret" not in text


def test_ssh_config_is_strict_and_keeps_its_sockets_in_the_run(tmp_path: Path) -> None:
    hosts = {"web": {"name": "wjw-fybj-web", "address": "10.20.53.159"},
             "db": {"name": "wjw-fybj-db", "address": "10.20.53.157"}}
    path = write_ssh_config(tmp_path, hosts, TARGETS, tmp_path / "key")
    text = path.read_text()
    assert "StrictHostKeyChecking yes" in text and "no" not in text.split("StrictHostKey")[1][:6]
    assert f"UserKnownHostsFile {tmp_path / 'known_hosts'}" in text
    assert f"ControlPath {control_dir(tmp_path)}/%C" in text  # the run's (or a short twin)
    assert "Host wjw-fybj-db\n    HostName 10.20.53.157" in text
    assert (tmp_path / "known_hosts").read_text() == (
        "10.20.53.157 ssh-ed25519 AAAAdb\n10.20.53.159 ssh-ed25519 AAAAweb\n")
    assert oct(path.stat().st_mode & 0o777) == "0o600"


JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="0" failures="1" skipped="1" tests="3">
<testcase classname="migrate.stages.verify.suites.test_host" name="test_service_active[a@h]"
 time="0.512"><properties><property name="expected" value="a active"/>
 <property name="evidence.state" value="{&quot;active&quot;: &quot;active&quot;}"/>
 </properties></testcase>
<testcase classname="test_data" name="test_database_equals_evidence[fybj@h]" time="1.25">
 <properties><property name="host" value="wjw-fybj-db"/></properties>
 <failure message="expected 3 tables; found x (on wjw-fybj-db); look at psql">details
 </failure></testcase>
<testcase classname="test_exchange" name="test_reverse_probe" time="0.001">
 <skipped type="pytest.skip" message="/x/test_exchange.py:80: not run: tcp failed first">
 /x/test_exchange.py:80: not run</skipped></testcase>
</testsuite></testsuites>"""


def test_junit_to_checks() -> None:
    checks = parse_junit(JUNIT)
    assert [(c["id"], c["result"]) for c in checks] == [
        ("host::service_active[a@h]", "passed"),
        ("data::database_equals_evidence[fybj@h]", "failed"),
        ("exchange::reverse_probe", "skipped")]
    assert checks[0]["evidence"] == {"state": {"active": "active"}}
    assert checks[0]["time_s"] == 0.512 and checks[0]["expected"] == "a active"
    assert checks[1]["host"] == "wjw-fybj-db" and checks[1]["message"].startswith("expected 3")
    assert checks[2]["message"] == "not run: tcp failed first"
    summary = summarize(checks)
    assert summary["counts"] == {"passed": 1, "failed": 1, "error": 0, "skipped": 1}
    assert not summary["passed"] and summary["failed"] == ["data::database_equals_evidence[fybj@h]"]
    assert summarize([])["passed"] is False  # nothing checked proves nothing
    assert check_id("", "test_x") == ("unknown", "unknown::x")
    assert check_id("", "test_x", "../suites/test_host.py") == ("host", "host::x")


SUITE = '''
import pytest


def test_service_active(service, check):
    check.evidence("state", {"unit": service["unit"]})
    check.expect(service["unit"] != "broken.service", expected=f"{service['unit']} active",
                 found="inactive", host=service["host"], look_at="journalctl")


def test_skipped(context):
    pytest.skip("nothing to do in " + context["system"])
'''


def test_the_suites_run_in_a_subprocess_and_results_come_from_junit(tmp_path: Path,
                                                                     monkeypatch) -> None:
    monkeypatch.setenv("PYTEST_ADDOPTS", "--this-option-would-break-the-run")
    suite = tmp_path / "suites" / "test_fake.py"
    suite.parent.mkdir()
    suite.write_text(SUITE)
    context = {"system": SYSTEM, "ssh_config": "none",
               "services": [{"name": "a", "unit": "a.service", "host": "h1"},
                            {"name": "b", "unit": "broken.service", "host": "h2"}]}
    context_file = tmp_path / "context.json"
    context_file.write_text(json.dumps(context))
    junit = tmp_path / "junit.xml"
    done = run_pytest(tmp_path, context_file, junit, [suite])
    assert done.returncode == 1, done.stdout + done.stderr
    checks = {c["id"]: c for c in parse_junit(junit)}
    assert set(checks) == {"fake::service_active[a@h1]", "fake::service_active[b@h2]",
                           "fake::skipped"}
    failed = checks["fake::service_active[b@h2]"]
    assert failed["result"] == "failed"
    assert failed["message"] == ("expected broken.service active; found inactive (on h2); "
                                 "look at journalctl")
    assert (failed["expected"], failed["found"], failed["host"], failed["look_at"]) == (
        "broken.service active", "inactive", "h2", "journalctl")
    assert failed["evidence"] == {"state": {"unit": "broken.service"}}
    assert checks["fake::service_active[a@h1]"]["result"] == "passed"
    assert checks["fake::skipped"] == {**checks["fake::skipped"], "result": "skipped",
                                       "message": f"nothing to do in {SYSTEM}"}
    assert not (tmp_path / ".pytest_cache").exists()


def test_the_data_suite_measures_as_the_playbooks_recorded() -> None:
    from migrate.adapters.ansible import PLAYBOOKS
    from migrate.stages.verify.suites.test_data import MANIFEST_SCRIPT, TABLE_SUM

    scripts = "".join(p.read_text() for p in PLAYBOOKS.rglob("*") if p.suffix in (".sh", ".yml"))
    assert TABLE_SUM in scripts
    body = [line.strip() for line in MANIFEST_SCRIPT.strip().splitlines()]
    manifest = PLAYBOOKS / "roles" / "transfer_files" / "tasks" / "manifest.yml"
    assert all(line in manifest.read_text() for line in body)


def test_a_port_open_to_every_address_is_open_to_the_operator_too() -> None:
    from migrate.stages.verify.context import _ports

    system = {"security_rules": [
        {"direction": "ingress", "instance": "web", "protocol": "tcp", "port": 8443,
         "peer": {"kind": "internet", "cidr": "0.0.0.0/0"}},
        {"direction": "ingress", "instance": "web", "protocol": "tcp", "port": 22,
         "peer": {"kind": "ops", "cidr": "10.30.0.0/24"}},
        {"direction": "ingress", "instance": "web", "protocol": "tcp", "port": 8080,
         "peer": {"kind": "exchange", "cidr": "10.40.0.0/24"}}]}
    ports = _ports(system, {"web": {"name": "sjj-tyrz-web", "address": "10.20.1.5"}})
    assert ports["web"]["operator_allowed"] == [22, 8443]
    assert ports["web"]["planned_ports"] == [22, 8080, 8443]


def test_closing_the_masters_removes_a_short_twin_socket_folder(tmp_path: Path) -> None:
    """A run dir too long for a socket's address gets its sockets in a short twin folder
    in the temporary folder: gone after the run, even with a socket file left behind."""
    from migrate.stages.verify.run import close_masters

    run_dir = tmp_path / ("r" * 90)
    run_dir.mkdir()
    hosts = {"web": {"name": "wjw-fybj-web", "address": "10.20.53.159"}}
    path = write_ssh_config(run_dir, hosts, TARGETS, tmp_path / "key")
    twin = control_dir(run_dir)
    assert twin.parent != run_dir and twin.is_dir()
    (twin / "0123abcd").write_text("")  # as a master that had not yet removed its socket
    close_masters(path, {})
    assert not twin.exists()
