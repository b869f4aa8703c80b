"""``migrate verify`` and the verified cutover on the sandbox, with wjw-fybj of the example
estate: sandbox up, provision (real stacks), transfer, register, cutover (which verifies).
Then one fault at a time: the right check fails with a helpful message, and the fault is
undone; then faults that survive a cutover make the cutover roll back by itself, the
source serving again.

One world serves the module (tests run in file order); its finalizer destroys the system's
stacks and takes the sandbox down, whatever happened.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from migrate.core import state
from migrate.core.errors import EnvironmentNotReady
from migrate.orchestrate.pipeline import (
    context_of,
    make_plan,
    move,
    open_estate,
    provisioned_targets,
    register_systems,
    run_stacks,
    system_instances,
    verify_systems,
)
from migrate.rehearsal.sandbox.estate import (
    admin_token_path,
    known_hosts_path,
    operator_key_path,
    sandbox_down,
    sandbox_up,
)
from migrate.rehearsal.sandbox.estate_plan import plan_sandbox
from migrate.rehearsal.sandbox.estate_platform import platform_client, wait_platform_healthy
from migrate.stages.verify.run import verify_system
from tests.transfer.world import copy_estate, ssh

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

SYSTEM = "wjw-fybj"
SCALE = 16 * 1024
RESOURCE = "3/140/005/0001"
TIMINGS: dict[str, float] = {}


@dataclass
class Moved:
    folder: Path
    estate: object
    plan: dict
    targets: dict
    known_hosts: Path
    platform_ip: str
    timings: dict = field(default_factory=dict)


@pytest.fixture(scope="module")
def moved(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moved]:
    from migrate.adapters.engine import find_engine
    from migrate.rehearsal.sandbox import require_host

    try:
        require_host()
    except EnvironmentNotReady as error:
        pytest.skip(f"needs root and the sandbox tools: {error.message}")
    if find_engine() is None:
        pytest.skip("the Pulumi engine is not built: run 'make engine'")
    folder = copy_estate(tmp_path_factory.mktemp("verify") / "estate", SYSTEM)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MIGRATE_SANDBOX_ROOT", str(tmp_path_factory.mktemp("sandbox-root")))
        patch.delenv("MIGRATE_STATE_DIR", raising=False)
        estate = open_estate(folder)
        provisioned = False
        try:
            started = time.monotonic()
            sandbox_up(estate, scale=SCALE)
            TIMINGS["sandbox up"] = time.monotonic() - started
            started = time.monotonic()
            provisioned = True
            run_stacks(context_of(estate), "provision", [SYSTEM])
            TIMINGS["provision"] = time.monotonic() - started
            targets = provisioned_targets(context_of(estate), SYSTEM)
            known = folder / "targets_known_hosts"
            known.write_text("".join(
                f"{t['address']} {' '.join(t['host_key'].split()[:2])}\n"
                for t in targets.values()) + known_hosts_path(estate).read_text())
            world = Moved(folder, estate, make_plan(context_of(estate)).plan, targets, known,
                          plan_sandbox(estate).platform_ip)
            started = time.monotonic()
            assert_ok(move(context_of(estate), "transfer", [SYSTEM]))
            TIMINGS["transfer"] = time.monotonic() - started
            register_systems(context_of(estate), [SYSTEM])
            yield world
        finally:
            print("timings:", json.dumps({k: round(v, 1) for k, v in TIMINGS.items()}))
            if provisioned:
                run_stacks(context_of(estate), "destroy", [SYSTEM],
                           leave_source_traces=True)  # the sources go next
            sandbox_down(estate)


def assert_ok(results: list[dict]) -> list[dict]:
    assert all(r["result"] == "ok" for r in results), "\n".join(
        f"{r['system']}: {r.get('error')} (hint: {r.get('hint')})" for r in results)
    return results


def on_target(world: Moved, instance: str, command: str) -> str:
    done = ssh(world, world.targets[instance]["address"], "root",
               operator_key_path(world.estate), command, world.known_hosts)
    assert done.returncode == 0, f"{command}: {done.stderr}"
    return done.stdout


def on_platform(world: Moved, command: str) -> str:
    done = ssh(world, world.platform_ip, "root", operator_key_path(world.estate), command,
               world.known_hosts)
    assert done.returncode == 0, f"{command}: {done.stderr}"
    return done.stdout


def on_source(world: Moved, host: str, command: str):
    manifest = world.estate.systems[SYSTEM]
    key = world.folder / "secrets" / manifest.source.ssh.key.split("://", 1)[1]
    address = next(h.address for h in manifest.source.hosts if h.name == host)
    return ssh(world, address, manifest.source.ssh.user, key, command, world.known_hosts)


def verify(world: Moved) -> dict:
    started = time.monotonic()
    result = verify_system(context_of(world.estate), SYSTEM, world.targets,
                           instances=system_instances)
    TIMINGS.setdefault("verify (each)", time.monotonic() - started)
    return result


def failed(result: dict) -> dict[str, dict]:
    return {c["id"]: c for c in result["checks"] if c["result"] in ("failed", "error")}


def only_failed(result: dict, *prefixes: str) -> dict[str, dict]:
    """The failed checks, all starting with one of ``prefixes`` (nothing else broke)."""
    found = failed(result)
    assert found, "expected a failed check"
    assert all(c.startswith(prefixes) for c in found), list(found)
    return found


def service_state(world: Moved, where: str) -> str:
    command = "systemctl is-active fybj-web; systemctl is-enabled fybj-web; true"
    if where == "source":
        return " ".join(on_source(world, "web1", command).stdout.split())
    return " ".join(on_target(world, "web", command).split())


def source_answers(world: Moved) -> int:
    done = on_source(world, "web1", "python3 -c \"import urllib.request; print(urllib.request."
                     "urlopen('http://127.0.0.1:8080/health').status)\"")
    return int(done.stdout.strip() or 0) if done.returncode == 0 else 0


# ---------------------------------------------------------------- the verified cutover


def test_cutover_verifies_and_every_check_passes(moved: Moved) -> None:
    started = time.monotonic()
    results = assert_ok(move(context_of(moved.estate), "cutover", [SYSTEM]))
    TIMINGS["cutover + verify"] = time.monotonic() - started
    verified = results[0]["outputs"]["verify"]
    assert verified["result"] == "ok", verified
    assert service_state(moved, "target") == "active enabled"
    entries = [e for e in state.journal_for(moved.estate).entries()
               if e["system"] == SYSTEM and e["stage"] == "verify"]
    assert entries[-1]["result"] == "ok"
    assert entries[-1]["outputs"]["counts"]["failed"] == 0


def test_verify_through_the_cli_passes_with_every_check(moved: Moved, run_cli) -> None:
    started = time.monotonic()
    done = run_cli("verify", moved.folder, "--system", SYSTEM, "--output", "json")
    TIMINGS["verify (cli)"] = time.monotonic() - started
    assert done.code == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)["systems"][0]
    checks = {c["id"]: c for c in result["checks"]}
    assert {c["result"] for c in checks.values()} <= {"passed", "skipped"}
    skipped = {i: c["message"] for i, c in checks.items() if c["result"] == "skipped"}
    assert set(skipped) == {"host::volume_encrypted[/srv/fybj/certificates@wjw-fybj-web]",
                            "host::volume_encrypted[/var/lib/postgresql@wjw-fybj-db]"}, skipped
    for name in ("host::service_active_and_enabled[fybj-web@wjw-fybj-web]",
                 "host::unplanned_ports_refused_from_outside[wjw-fybj-db]",
                 "data::file_tree_equals_evidence[/srv/fybj/certificates@wjw-fybj-web]",
                 "data::database_equals_evidence[fybj@wjw-fybj-db]",
                 "application::health_endpoint[fybj-web@wjw-fybj-web]",
                 f"application::interface_answers_like_source[{RESOURCE} "
                 "/api/birth-certificates?limit=20&offset=0]",
                 "exchange::tls_verified_against_ca_bundle[wjw-fybj-db]",
                 "exchange::signed_request_accepted[wjw-fybj-web]",
                 f"exchange::resource_linked[{RESOURCE}]",
                 "exchange::round_trip_within_budget",
                 "exchange::reverse_probe_reaches_system"):
        assert checks[name]["result"] == "passed", name
    trip = checks["exchange::round_trip_within_budget"]["evidence"]["roundtrip"]
    assert trip["payload_matches"] and trip["total_ms"] < 2000
    probes = checks["host::unplanned_ports_refused_from_outside[wjw-fybj-web]"]["evidence"]
    assert probes["probes"]["8080"] in ("timeout", "refused")
    exchange_net = ipaddress.ip_network(str(moved.estate.settings.exchange.network))
    for host in ("wjw-fybj-web", "wjw-fybj-db"):  # the platform is on the project's bridge
        dns = checks[f"exchange::platform_name_resolves[{host}]"]["evidence"]["dns"]
        assert dns["addresses"] and all(
            ipaddress.ip_address(a) in exchange_net for a in dns["addresses"]), dns
    probe = checks["exchange::reverse_probe_reaches_system"]["evidence"]["probe"]
    assert probe["url"] == f"http://{moved.targets['web']['address']}:8080/health"
    TIMINGS.update({f"check {i}": c["time_s"] for i, c in checks.items()})
    TIMINGS["checks total"] = sum(c["time_s"] for c in checks.values())
    run_dir = Path(result["run_dir"])
    text = "".join(p.read_text(errors="replace") for p in run_dir.rglob("*") if p.is_file())
    secret_values = state.secret_values(moved.estate)
    assert secret_values and not [s for s in secret_values if s in text]


# ---------------------------------------------------------------- one fault at a time


def test_stopped_service_fails_its_check_and_the_cli_exits_4(moved: Moved, run_cli) -> None:
    on_target(moved, "web", "systemctl stop fybj-web")
    try:
        done = run_cli("verify", moved.folder, "--system", SYSTEM, "--output", "json")
    finally:
        on_target(moved, "web", "systemctl start fybj-web")
    assert done.code == 4, done.stdout + done.stderr
    document = json.loads(done.stdout)  # one document, the failure in it
    error = document["error"]
    assert "host::service_active_and_enabled[fybj-web@wjw-fybj-web]" in error["message"]
    result = document["systems"][0]
    assert result["result"] == "failed" and result["counts"]["failed"] >= 1
    found = failed(result)
    check = found["host::service_active_and_enabled[fybj-web@wjw-fybj-web]"]
    assert check["found"] == "inactive, enabled" and check["host"] == "wjw-fybj-web"
    assert "journalctl -u fybj-web.service" in check["message"]
    assert "application::health_endpoint[fybj-web@wjw-fybj-web]" in found
    assert not any(c.startswith("data::") for c in found)


def test_altered_row_fails_the_database_check(moved: Moved) -> None:
    sql = ("runuser -u postgres -- psql -XAtq -d fybj -c "
           "'UPDATE birth_certificates SET id = -id WHERE id = (SELECT max(id) FROM "
           "birth_certificates)'")
    on_target(moved, "db", sql)
    try:
        result = verify(moved)
    finally:
        on_target(moved, "db", "runuser -u postgres -- psql -XAtq -d fybj -c "
                  "'UPDATE birth_certificates SET id = -id WHERE id < 0'")
    found = only_failed(result, "data::", "application::interface_answers_like_source")
    check = found["data::database_equals_evidence[fybj@wjw-fybj-db]"]
    assert "public.birth_certificates" in check["found"] and "checksum" in check["found"]
    assert "legacy_records" not in check["found"]


def test_deleted_file_fails_the_file_check(moved: Moved) -> None:
    root = next(s for s in moved.plan["systems"] if s["id"] == SYSTEM)["data"]["files"][0]
    name = on_target(moved, "web", f"cd {root['path']} && find . -type f | sort | head -1")
    name = name.strip().removeprefix("./")
    held = f"/root/held-{secrets.token_hex(3)}"
    on_target(moved, "web", f"mv {root['path']}/{name} {held}")
    try:
        result = verify(moved)
    finally:
        on_target(moved, "web", f"mv {held} {root['path']}/{name}")
    found = only_failed(result, "data::file_tree")
    check = next(iter(found.values()))
    assert check["found"].startswith(f"1 missing ({root['path']}/{name})"), check["found"]
    assert "manifests" in check["look_at"]


def admin(world: Moved):
    return platform_client(world.estate, world.platform_ip, admin_token_path(world.estate))


def test_revoked_app_secret_fails_the_signed_request(moved: Moved) -> None:
    key = moved.estate.systems[SYSTEM].exchange.app_key
    with admin(moved) as client:
        client.rotate_app(key)  # a new secret the system does not have: the old one revoked
    try:
        result = verify(moved)
    finally:
        secret = state.read_secret(moved.estate, moved.estate.systems[SYSTEM].exchange.app_secret)
        with admin(moved) as client:
            client.rotate_app(key, app_secret=secret)
    found = only_failed(result, "exchange::signed_request_accepted")
    for check in found.values():
        assert "bad_signature" in check["found"] and "secret" in check["found"]
    skipped = {c["id"]: c for c in result["checks"] if c["result"] == "skipped"}
    assert "signed failed first" in skipped["exchange::reverse_probe_reaches_system"]["message"]


def test_unregistered_resource_fails_its_check(moved: Moved) -> None:
    exchange = moved.estate.systems[SYSTEM].exchange
    from migrate.orchestrate.pipeline import platform_client as system_client

    with system_client(context_of(moved.estate), SYSTEM) as client:
        client.delete_resource(RESOURCE)
    try:
        result = verify(moved)
    finally:
        register_systems(context_of(moved.estate), [SYSTEM])
    found = only_failed(result, f"exchange::resource_linked[{RESOURCE}]",
                        "exchange::round_trip")
    check = found[f"exchange::resource_linked[{RESOURCE}]"]
    assert check["found"] == "state unlinked (未挂接)" and exchange.app_key


def stop_platform(world: Moved) -> None:
    on_platform(world, "systemctl stop exchange.service")


def start_platform(world: Moved) -> None:
    on_platform(world, "systemctl start exchange.service")
    wait_platform_healthy(world.estate, world.platform_ip)


def test_stopped_platform_fails_the_reachability_check(moved: Moved) -> None:
    stop_platform(moved)
    try:
        result = verify(moved)
    finally:
        start_platform(moved)
    found = only_failed(result, "exchange::platform_port_reachable")
    assert set(found) == {"exchange::platform_port_reachable[wjw-fybj-web]",
                          "exchange::platform_port_reachable[wjw-fybj-db]"}
    assert all("refused" in c["found"].lower() for c in found.values()), found


def open_port(world: Moved) -> None:
    on_target(world, "web", "systemd-run --unit=verify-fault-port python3 -m http.server 9999 "
                            "&& nft insert rule inet migrate input tcp dport 9999 accept "
                            "&& sleep 1")


def close_port(world: Moved) -> None:
    on_target(world, "web", "systemctl stop verify-fault-port; nft -f /etc/nftables.conf")


def test_unplanned_open_port_fails_the_port_checks(moved: Moved) -> None:
    open_port(moved)
    try:
        result = verify(moved)
    finally:
        close_port(moved)
    found = only_failed(result, "host::")
    assert set(found) == {"host::only_planned_ports_listen[wjw-fybj-web]",
                          "host::unplanned_ports_refused_from_outside[wjw-fybj-web]"}
    listen = found["host::only_planned_ports_listen[wjw-fybj-web]"]
    assert listen["found"] == "also port(s) 9999"
    probe = found["host::unplanned_ports_refused_from_outside[wjw-fybj-web]"]
    assert probe["found"] == "port(s) 9999 accepted a connection"
    assert "nft list ruleset" in probe["look_at"]


# ---------------------------------------------------------------- through the cutover


def cutover_rolls_back(world: Moved, *expected: str) -> str:
    """cutover fails naming one of ``expected``, rolls back, and the source serves again."""
    started = time.monotonic()
    results = move(context_of(world.estate), "cutover", [SYSTEM])
    TIMINGS.setdefault("cutover + verify + rollback", time.monotonic() - started)
    assert results[0]["result"] == "failed", results
    message = results[0]["error"]["message"]
    assert any(e in message for e in expected) and "rolled back" in message, message
    assert service_state(world, "source") == "active enabled"
    assert service_state(world, "target") == "inactive disabled"
    assert source_answers(world) == 200
    entries = [e for e in state.journal_for(world.estate).entries() if e["system"] == SYSTEM]
    last_cutover = max(i for i, e in enumerate(entries) if e["stage"] == "cutover")
    after = [(e["stage"], e["result"]) for e in entries[last_cutover + 1:]]
    assert ("rollback", "ok") in after, after
    assert all(result == "failed" for stage, result in after if stage == "verify"), after
    return message


def test_cutover_with_the_platform_stopped_rolls_back(moved: Moved) -> None:
    stop_platform(moved)
    try:
        # the cutover's switch of the endpoint to the targets meets the platform first
        cutover_rolls_back(moved, "exchange::platform_port_reachable",
                           "endpoint on the exchange platform to its targets failed")
    finally:
        start_platform(moved)
        register_systems(context_of(moved.estate), [SYSTEM])  # the endpoint back at the
        # source


def test_cutover_with_an_unplanned_port_rolls_back(moved: Moved) -> None:
    open_port(moved)
    try:
        cutover_rolls_back(moved, "host::unplanned_ports_refused_from_outside")
    finally:
        close_port(moved)


def fault_before_verification(monkeypatch: pytest.MonkeyPatch, inject) -> None:
    """Inject a fault after the cutover play succeeded and the endpoint was switched, right
    before the verification (a service that dies, a row or file changed by something else,
    the platform revoking the secret or dropping a resource): only verification can catch
    it."""
    import migrate.stages.verify.run

    real = migrate.stages.verify.run.verify_system

    def fault_then_verify(*args, **kwargs):
        inject()
        return real(*args, **kwargs)

    monkeypatch.setattr(migrate.stages.verify.run, "verify_system", fault_then_verify)


def test_cutover_then_the_secret_revoked_rolls_back(moved: Moved,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    key = moved.estate.systems[SYSTEM].exchange.app_key

    def revoke() -> None:
        with admin(moved) as client:
            client.rotate_app(key)

    fault_before_verification(monkeypatch, revoke)
    try:
        cutover_rolls_back(moved, "exchange::signed_request_accepted")
    finally:
        secret = state.read_secret(moved.estate, moved.estate.systems[SYSTEM].exchange.app_secret)
        with admin(moved) as client:
            client.rotate_app(key, app_secret=secret)
        register_systems(context_of(moved.estate), [SYSTEM])


def test_cutover_then_a_resource_unregistered_rolls_back(moved: Moved,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from migrate.orchestrate.pipeline import platform_client as system_client

    def unregister() -> None:
        with system_client(context_of(moved.estate), SYSTEM) as client:
            client.delete_resource(RESOURCE)

    fault_before_verification(monkeypatch, unregister)
    try:
        cutover_rolls_back(moved, f"exchange::resource_linked[{RESOURCE}]")
    finally:
        register_systems(context_of(moved.estate), [SYSTEM])


def test_cutover_then_a_stopped_service_rolls_back(moved: Moved,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    fault_before_verification(monkeypatch,
                              lambda: on_target(moved, "web", "systemctl stop fybj-web"))
    cutover_rolls_back(moved, "host::service_active_and_enabled[fybj-web@wjw-fybj-web]")


def test_cutover_then_an_altered_row_rolls_back(moved: Moved,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    fault_before_verification(monkeypatch, lambda: on_target(
        moved, "db", "runuser -u postgres -- psql -XAtq -d fybj -c 'UPDATE birth_certificates "
                     "SET id = -id WHERE id = (SELECT max(id) FROM birth_certificates)'"))
    try:
        cutover_rolls_back(moved, "data::database_equals_evidence[fybj@wjw-fybj-db]")
    finally:  # the cutover copies again only what the source wrote since: undo it here
        on_target(moved, "db", "runuser -u postgres -- psql -XAtq -d fybj -c "
                  "'UPDATE birth_certificates SET id = -id WHERE id < 0'")


def test_cutover_then_a_deleted_file_rolls_back(moved: Moved,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    tree = next(s for s in moved.plan["systems"] if s["id"] == SYSTEM)["data"]["files"][0]
    name = on_target(moved, "web", f"cd {tree['path']} && find . -type f | sort | head -1")
    name = f"{tree['path']}/{name.strip().removeprefix('./')}"
    held = f"/root/held-{secrets.token_hex(3)}"
    fault_before_verification(monkeypatch, lambda: on_target(moved, "web", f"mv {name} {held}"))
    try:
        message = cutover_rolls_back(moved, "data::file_tree_equals_evidence")
    finally:
        on_target(moved, "web", f"test -e {name} || mv {held} {name}; rm -f {held}")
    assert f"1 missing ({name})" in message


def test_clean_cutover_after_the_faults_passes_again(moved: Moved) -> None:
    """The next cutover syncs the altered row and the deleted file again: all checks pass."""
    results = assert_ok(move(context_of(moved.estate), "cutover", [SYSTEM]))
    assert results[0]["outputs"]["verify"]["result"] == "ok"
    assert service_state(moved, "target") == "active enabled"
    assert verify_systems(context_of(moved.estate), [SYSTEM])[0]["passed"]
