"""Host trust without machines: fingerprints, known_hosts entries, the decisions of
``migrate trust`` (nothing trusted silently, a CHANGED key never replaced unasked), and
which known_hosts the inventories of the plays use."""

from __future__ import annotations

from pathlib import Path

import paramiko
import pytest

from migrate.adapters import access
from migrate.adapters.inventory import read_inventory, write_inventory
from migrate.core import state
from migrate.core.errors import HostKeyChanged, HostKeyUnknown, InvalidInput, StageFailed
from migrate.orchestrate.pipeline import context_of, make_plan, open_context, open_estate
from migrate.stages import trust
from tests.conftest import edit

KEY_A = "AAAAC3NzaC1lZDI1NTE5AAAAIONR+yMnb+DrOOmoOqyHvW7svoiR0qehqEL3DRTc2cpF"
FP_A = "SHA256:w5RJrX4KmicKk5LUdF3eYikcw5ZW1e+Ry9HGZ6Aekuc"  # ssh-keygen -lf
KEY_B = "AAAAC3NzaC1lZDI1NTE5AAAAIKeqFoy5ZWzn/x5+Z1XwpFoEukl9PeUzi6xSr3nQVaDD"
FP_B = "SHA256:nvRJfZKw8muvbWRHpvYqSg+mPeEYUPK/Ibn09M/KTk4"
TARGETS = {"web": {"address": "10.20.53.159", "host_key": "ssh-ed25519 AAAAtargetweb"},
           "db": {"address": "10.20.53.157", "host_key": "ssh-ed25519 AAAAtargetdb"}}


def test_fingerprints_are_openssh_sha256() -> None:
    assert trust.fingerprint_of(KEY_A) == FP_A
    assert trust.KnownKey("ssh-ed25519", KEY_B).fingerprint == FP_B
    assert trust.normalise_fingerprint(FP_A.removeprefix("SHA256:")) == FP_A


def test_hashed_and_plain_known_hosts_names() -> None:
    hashed = paramiko.HostKeys.hash_host("192.168.178.10")
    assert trust.names_host(hashed, "192.168.178.10")
    assert not trust.names_host(hashed, "192.168.178.11")
    assert trust.names_host("wiki1,192.168.178.10", "192.168.178.10")
    assert not trust.names_host("192.168.178.100", "192.168.178.10")
    assert trust.names_host("[192.168.178.10]:2222", access.known_hosts_name("192.168.178.10",
                                                                             2222))


def test_compare_new_same_changed() -> None:
    target = trust.SourceAddress("192.168.178.10")
    offered = trust.KnownKey("ssh-ed25519", KEY_A)
    lines = ["# comment", f"192.168.178.10 ssh-ed25519 {KEY_A}"]
    assert trust.compare(target, offered, []).state == trust.NEW
    assert trust.compare(target, offered, lines).state == trust.SAME
    changed = trust.compare(target, trust.KnownKey("ssh-ed25519", KEY_B), lines)
    assert changed.state == trust.CHANGED and changed.recorded[0].fingerprint == FP_A
    # a recorded key of another type only is a change too, not a new host
    other = ["192.168.178.10 ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ"]
    assert trust.compare(target, offered, other).state == trust.CHANGED
    revoked = [f"@revoked 192.168.178.10 ssh-ed25519 {KEY_A}"]
    assert trust.compare(target, offered, revoked).state == trust.NEW


def test_recording_a_changed_key_replaces_only_that_hosts_lines() -> None:
    lines = ["# estate keys", f"192.168.178.10 ssh-ed25519 {KEY_A}",
             f"192.168.178.11 ssh-ed25519 {KEY_A}"]
    target = trust.SourceAddress("192.168.178.10")
    changed = trust.compare(target, trust.KnownKey("ssh-ed25519", KEY_B), lines)
    assert trust.updated_lines(lines, [changed]) == [
        "# estate keys", f"192.168.178.11 ssh-ed25519 {KEY_A}",
        f"192.168.178.10 ssh-ed25519 {KEY_B}"]


def test_decide_trusts_only_named_or_confirmed_keys() -> None:
    target = trust.SourceAddress("192.168.178.10")
    new = trust.compare(target, trust.KnownKey("ssh-ed25519", KEY_A), [])
    other = trust.compare(trust.SourceAddress("192.168.178.11"),
                          trust.KnownKey("ssh-ed25519", KEY_B), [])
    assert trust.decide([new, other], [], None) == ([], [new, other])
    assert trust.decide([new, other], [FP_A], None) == ([new], [other])
    assert trust.decide([new, other], [], lambda c: c is other) == ([other], [new])


# ---- trust_estate on an estate, the key exchange replaced -----------------------------------


@pytest.fixture
def trusting(estate: Path, monkeypatch: pytest.MonkeyPatch):
    """The example estate with sources.known_hosts set; fetching answers from ``offers``."""
    edit(estate / "migrate.yaml", "census:\n", "sources:\n  known_hosts: known_hosts\ncensus:\n")
    offers: dict[str, str] = {}
    monkeypatch.setattr(trust, "fetch_host_key",
                        lambda address, port=22, preferred=(): trust.KnownKey(
                            "ssh-ed25519", offers[address]))
    monkeypatch.setattr(trust, "guard_address", lambda _context, _address: None)
    return open_estate(estate), offers, estate / "known_hosts"


def test_unattended_trust_records_nothing_it_was_not_told(trusting) -> None:
    loaded, offers, known = trusting
    offers["192.168.90.21"], offers["192.168.90.22"] = KEY_A, KEY_B
    targets = trust.trust_targets(loaded, ["wjw-fybj"])
    assert [t.address for t in targets] == ["192.168.90.21", "192.168.90.22"]
    outcome = trust.trust_estate(context_of(loaded), targets)
    assert outcome.recorded == [] and len(outcome.refused) == 2
    assert not known.exists()
    with pytest.raises(HostKeyUnknown, match="2 source host key"):
        trust.raise_for_refused(outcome)
    outcome = trust.trust_estate(context_of(loaded), targets, [FP_A])
    assert [c.target.address for c in outcome.recorded] == ["192.168.90.21"]
    assert known.read_text() == f"192.168.90.21 ssh-ed25519 {KEY_A}\n"


def test_a_changed_key_is_reported_and_kept_until_its_new_fingerprint_is_named(trusting) -> None:
    loaded, offers, known = trusting
    known.write_text(f"192.168.90.21 ssh-ed25519 {KEY_A}\n")
    offers["192.168.90.21"] = KEY_B
    targets = [trust.SourceAddress("192.168.90.21", 22, "wjw-fybj", "web1")]
    outcome = trust.trust_estate(context_of(loaded), targets, [FP_A])  # the OLD fingerprint: no
    assert outcome.checks[0].state == trust.CHANGED and outcome.refused
    with pytest.raises(HostKeyChanged, match="CHANGED and not replaced") as raised:
        trust.raise_for_refused(outcome)
    assert FP_B in raised.value.message and f"(recorded: ssh-ed25519 {FP_A})" in (
        raised.value.message)
    assert known.read_text() == f"192.168.90.21 ssh-ed25519 {KEY_A}\n"
    outcome = trust.trust_estate(context_of(loaded), targets, [FP_B])
    assert outcome.action_of(outcome.checks[0]) == "REPLACED (confirmed)"
    assert known.read_text() == f"192.168.90.21 ssh-ed25519 {KEY_B}\n"
    entries = [e for e in state.journal_for(loaded).entries() if e["stage"] == "trust"]
    assert [e["result"] for e in entries] == ["failed", "ok"]


def test_trust_needs_the_estate_setting(estate: Path) -> None:
    with pytest.raises(InvalidInput) as raised:
        trust.trust_estate(open_context(estate), [])
    assert "sources.known_hosts is not set" in raised.value.problems[0].message
    assert raised.value.problems[0].file.endswith("migrate.yaml")


def test_cli_refuses_yes_without_fingerprints(trusting, run_cli) -> None:
    loaded, _offers, _known = trusting
    result = run_cli("trust", loaded.root, "--yes")
    assert result.code == 2
    assert "--yes trusts only the keys named with --accept" in result.stderr


# ---- which known_hosts the plays get ------------------------------------------------------------


def _inventory_known_hosts(estate: Path, tmp_path: Path) -> list[str]:
    context = open_context(estate)
    plan = make_plan(context, write=False).plan
    run_dir = tmp_path / "run"
    run_dir.mkdir(exist_ok=True)
    path = write_inventory(context, plan, "wjw-fybj", TARGETS, run_dir)
    assert "StrictHostKeyChecking=yes" in read_inventory(path)["all"]["vars"][
        "ansible_ssh_common_args"]
    return (run_dir / "known_hosts").read_text().splitlines()[:2]


def _sandbox_known_hosts(estate: Path, key: str) -> None:
    folder = estate / ".migrate" / "sandbox"
    folder.mkdir(parents=True)
    (folder / "known_hosts").write_text(f"192.168.90.21 ssh-ed25519 {key}\n"
                                        f"192.168.90.22 ssh-ed25519 {key}\n")


def test_inventory_takes_source_keys_from_the_estate_file_when_set(estate: Path,
                                                                   tmp_path: Path) -> None:
    _sandbox_known_hosts(estate, KEY_A)
    assert _inventory_known_hosts(estate, tmp_path) == [
        f"192.168.90.21 ssh-ed25519 {KEY_A}", f"192.168.90.22 ssh-ed25519 {KEY_A}"]
    edit(estate / "migrate.yaml", "census:\n", "sources:\n  known_hosts: keys/known\ncensus:\n")
    (estate / "keys").mkdir()
    (estate / "keys" / "known").write_text(f"192.168.90.21 ssh-ed25519 {KEY_B}\n"
                                           f"192.168.90.22 ssh-ed25519 {KEY_B}\n")
    assert access.source_known_hosts(open_context(estate)) == (estate / "keys/known").absolute()
    assert _inventory_known_hosts(estate, tmp_path) == [
        f"192.168.90.21 ssh-ed25519 {KEY_B}", f"192.168.90.22 ssh-ed25519 {KEY_B}"]


def test_inventory_refuses_a_source_the_estate_file_does_not_know(estate: Path,
                                                                  tmp_path: Path) -> None:
    _sandbox_known_hosts(estate, KEY_A)  # the sandbox knows it, but the estate's file rules
    edit(estate / "migrate.yaml", "census:\n", "sources:\n  known_hosts: known_hosts\ncensus:\n")
    (estate / "known_hosts").write_text(f"192.168.90.21 ssh-ed25519 {KEY_B}\n")
    with pytest.raises(StageFailed, match=r"no host key of source host db1 .*known_hosts"):
        _inventory_known_hosts(estate, tmp_path)


# ---- the operator's side: terminal prompts, unattended runs, the guard, JSON ------------------


def test_a_changed_key_on_a_terminal_needs_its_fingerprint_typed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import click

    from migrate.cli.main import ask_to_trust

    target = trust.SourceAddress("192.168.178.10")
    lines = [f"192.168.178.10 ssh-ed25519 {KEY_A}"]
    changed = trust.compare(target, trust.KnownKey("ssh-ed25519", KEY_B), lines)
    for typed, trusted in (("y", False), ("yes", False), (FP_A, False), ("", False),
                           (FP_B, True), (FP_B.removeprefix("SHA256:"), True)):
        monkeypatch.setattr(click, "prompt", lambda *_a, typed=typed, **_k: typed)
        assert ask_to_trust(changed) is trusted, typed
    new = trust.compare(target, trust.KnownKey("ssh-ed25519", KEY_A), [])
    monkeypatch.setattr(click, "confirm", lambda *_a, **_k: True)
    assert ask_to_trust(new) is True


def test_ci_is_unattended_even_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.delenv("CI", raising=False)
    assert trust.unattended() is False
    monkeypatch.setenv("CI", "true")
    assert trust.unattended() is True


def test_sessions_pass_the_guard_before_connecting(estate: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from migrate.core.errors import GuardRefused
    from migrate.targets import load_surroundings

    def refuse(address: str, allowed: object = ()) -> None:
        raise GuardRefused(f"refusing to connect to {address}")

    def never(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("connected before the guard")

    monkeypatch.setattr(load_surroundings("sandbox"), "guard_address", refuse)
    monkeypatch.setattr(paramiko.SSHClient, "connect", never)
    monkeypatch.setattr(access.socket, "create_connection", never)
    loaded = open_estate(estate)
    login = access.Login("203.0.113.5", "root", Path("/nonexistent"))
    with pytest.raises(GuardRefused, match=r"203\.0\.113\.5"):
        access.open_session(context_of(loaded), login)
    with pytest.raises(GuardRefused, match=r"203\.0\.113\.5"):
        trust.check_host_keys(context_of(loaded), [trust.SourceAddress("203.0.113.5")], Path("/x"))


def test_json_output_is_one_document_with_the_refusal(trusting, run_cli) -> None:
    import json

    loaded, offers, known = trusting
    offers["192.168.90.21"], offers["192.168.90.22"] = KEY_A, KEY_B
    result = run_cli("trust", loaded.root, "--system", "wjw-fybj", "--accept", FP_A,
                     "--output", "json")
    assert result.code == 2
    document = json.loads(result.stdout)
    assert [h["action"] for h in document["hosts"]] == ["recorded", "NOT trusted"]
    assert document["error"]["type"] == "HostKeyUnknown"
    assert known.read_text() == f"192.168.90.21 ssh-ed25519 {KEY_A}\n"


def test_inventory_reads_hashed_entries_and_every_key_type(estate: Path, tmp_path: Path) -> None:
    """known_hosts files from ssh-keyscan -H or a user's own ~/.ssh are hashed."""
    edit(estate / "migrate.yaml", "census:\n", "sources:\n  known_hosts: known_hosts\ncensus:\n")
    rsa = "AAAAB3NzaC1yc2EAAAADAQABAAABAQC7"
    (estate / "known_hosts").write_text(
        f"{paramiko.HostKeys.hash_host('192.168.90.21')} ssh-ed25519 {KEY_A}\n"
        f"@revoked 192.168.90.22 ssh-ed25519 {KEY_A}\n"
        f"192.168.90.22 ssh-ed25519 {KEY_B}\n"
        f"db1,192.168.90.22 ssh-rsa {rsa}\n")
    loaded = open_estate(estate)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    context = context_of(loaded)
    write_inventory(context, make_plan(context, write=False).plan, "wjw-fybj", TARGETS, run_dir)
    assert (run_dir / "known_hosts").read_text().splitlines()[:3] == [
        f"192.168.90.21 ssh-ed25519 {KEY_A}", f"192.168.90.22 ssh-ed25519 {KEY_B}",
        f"192.168.90.22 ssh-rsa {rsa}"]


def test_an_estate_without_manifests_is_open_to_trust_and_discovery(tmp_path: Path,
                                                                    estate: Path) -> None:
    from migrate.stages import discovery

    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "migrate.yaml").write_text((estate / "migrate.yaml").read_text())
    with pytest.raises(InvalidInput):
        open_estate(bare)  # every other command wants manifests
    loaded = access.open_estate_for_sources(bare)
    assert loaded.systems == {}
    with pytest.raises(InvalidInput, match="no system manifest yet"):
        discovery.discover_systems(context_of(loaded), [])
    new = access.Login("192.168.178.10", "root", tmp_path / "key")
    with pytest.raises(InvalidInput) as raised:
        discovery.discover_systems(context_of(loaded), ["Not_An_Id"], [new])
    assert "is not a system id" in raised.value.problems[0].message


def test_unattended_trust_of_known_keys_is_a_check_that_passes(trusting, run_cli) -> None:
    loaded, offers, known = trusting
    offers["192.168.90.21"], offers["192.168.90.22"] = KEY_A, KEY_B
    text = f"192.168.90.21 ssh-ed25519 {KEY_A}\n192.168.90.22 ssh-ed25519 {KEY_B}\n"
    known.write_text(text)
    result = run_cli("trust", loaded.root, "--system", "wjw-fybj")
    assert result.code == 0, result.stderr
    assert result.stdout.count("already trusted") == 2
    assert known.read_text() == text
    assert not [e for e in state.journal_for(loaded).entries() if e["stage"] == "trust"]


def test_a_broken_known_hosts_line_is_an_input_problem_with_its_line(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(f"# keys\n192.168.178.10 ssh-ed25519 {KEY_A}\n"
                     "192.168.178.11 ssh-ed25519 !!!notbase64\n")
    with pytest.raises(InvalidInput) as raised:
        access.load_known_hosts(paramiko.SSHClient(), known)
    problem = raised.value.problems[0]
    assert (problem.file, problem.line) == (str(known), 3)
    assert "not a known_hosts entry" in problem.message


def test_a_host_that_does_not_answer_does_not_hide_the_others(trusting, monkeypatch) -> None:
    loaded, _offers, known = trusting

    def fetch(address: str, port: int = 22, preferred: object = ()) -> trust.KnownKey:
        if address == "192.168.90.22":
            raise StageFailed(f"cannot reach {address}:22: connection refused")
        return trust.KnownKey("ssh-ed25519", KEY_A)

    monkeypatch.setattr(trust, "fetch_host_key", fetch)
    outcome = trust.trust_estate(context_of(loaded), trust.trust_targets(loaded, ["wjw-fybj"]),
                                 [FP_A])
    assert [c.target.address for c in outcome.recorded] == ["192.168.90.21"]
    assert known.read_text() == f"192.168.90.21 ssh-ed25519 {KEY_A}\n"
    assert outcome.unreachable == ["wjw-fybj/db1 192.168.90.22: cannot reach 192.168.90.22:22:"
                                   " connection refused"]
    with pytest.raises(StageFailed, match="1 source host\\(s\\) did not answer"):
        trust.raise_for_refused(outcome)
