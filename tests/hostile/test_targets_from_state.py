"""Target addresses and host keys come from the provisioning state, never the journal
(issue 15): a provision entry rewritten with another address and host key, its hashes
recomputed so that the audit still passes, must not change where a transfer points.

The state is real: a stack ``sys-<id>`` of the sandbox project made by the pinned engine on
the estate's own file backend, by a program that only exports what provisioning exports.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from migrate.adapters import engine
from migrate.core import credentials
from migrate.core.errors import InvalidInput, StageFailed
from migrate.core.journal import entry_hash
from migrate.core.state import journal_for, state_dir
from migrate.orchestrate import pipeline
from migrate.stages import provision

SYSTEM = "wjw-fybj"
STACK = f"sys-{SYSTEM}"
STATE_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBm3sYd0vYh5u2cVx8WfQm1oJx2P4gQe7rLk9aTt3uNs"
FORGED_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIF0rGeDf0rGeDf0rGeDf0rGeDf0rGeDf0rGeDf0rGeDf"
# What the stages reach each target with, and the stack's outputs (the target contract)
ACCESS = {"web": {"address": "127.0.0.21", "host_key": STATE_KEY},
          "db": {"address": "127.0.0.22", "host_key": STATE_KEY}}
PROVISIONED = {name: {**found, "id": f"id-{name}", "roles": [name], "replaces": [f"{name}1"],
                      "resource_name": f"wjw-fybj-{name}", "volumes": []}
               for name, found in ACCESS.items()}
FORGED = {name: {**found, "address": "192.0.2.66", "host_key": FORGED_KEY}
          for name, found in PROVISIONED.items()}
TOKEN = "stack-secret-output-not-a-real-one-5e1f"
PROGRAM = f"""\
import pulumi

pulumi.export("instances", {PROVISIONED!r})
pulumi.export("token", pulumi.Output.secret({TOKEN!r}))
"""


@pytest.fixture
def opened(estate: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(provision.BACKEND_ENV, raising=False)
    monkeypatch.delenv(credentials.PASSPHRASE_ENV, raising=False)
    return pipeline.open_estate(estate)


@pytest.fixture
def stack(opened, tmp_path: Path, request: pytest.FixtureRequest,
          monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """The system's stack, brought up by the real engine on the estate's file backend (its
    checkpoint gzipped when the test asks for "gzip")."""
    from pulumi import automation as auto

    built = engine.find_engine()
    if built is None:
        pytest.skip("the Pulumi engine is not built: run 'make engine'")
    program = tmp_path / "program"
    program.mkdir()
    (program / "Pulumi.yaml").write_text(f"name: {provision.stackplan.PROJECTS['sandbox']}\n"
                                         "runtime: python\n")
    (program / "__main__.py").write_text(PROGRAM)
    state = state_dir(opened)
    engine.prepare_state_dir(state)
    if getattr(request, "param", "plain") == "gzip":
        monkeypatch.setenv("PULUMI_SELF_MANAGED_STATE_GZIP", "true")
    env = engine.engine_env(state, credentials.ensure_passphrase_file(state, create=True),
                            engine=built)
    options = auto.LocalWorkspaceOptions(
        work_dir=str(program), pulumi_home=env["PULUMI_HOME"], env_vars=env,
        pulumi_command=engine.pulumi_command(built), secrets_provider="passphrase")
    made = auto.create_stack(STACK, work_dir=str(program), opts=options)
    made.up()
    try:
        yield made
    finally:
        made.destroy()
        made.workspace.remove_stack(STACK)


def journal_provision(opened, instances: dict) -> None:
    """The entry ``migrate provision`` writes for the system's stack."""
    journal_for(opened).append("provision", system=SYSTEM, result="changed",
                               outputs={"stack": STACK, "changes": {"create": 1},
                                        "outputs": {"instances": instances}})


def rewrite_provision_entries(opened, instances: dict) -> None:
    """What whoever can write the journal can do: every provision entry of the system names
    other targets, and each hash from there on is recomputed so the chain still holds."""
    path = journal_for(opened).path
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    for index, entry in enumerate(entries):
        if entry["stage"] == "provision" and entry["system"] == SYSTEM:
            entry["outputs"]["outputs"]["instances"] = instances
        if index:
            entry["prev"] = entries[index - 1]["hash"]
        entry["hash"] = entry_hash(entry)
    path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries))


class InventoryLoader(yaml.SafeLoader):
    """Reads an inventory as Ansible does, ``!unsafe`` strings as the strings they hold."""


def unsafe_value(loader: yaml.SafeLoader, node: yaml.Node) -> object:
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


InventoryLoader.add_constructor("!unsafe", unsafe_value)


@pytest.fixture
def inventories(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """The inventory of each play a stage would start; no play runs and nothing connects
    (the guard is the other file's subject; the state's targets are on loopback)."""
    seen: list[dict] = []

    def play(stage, inventory, *_args, **_kwargs):
        seen.append(yaml.load(Path(inventory).read_text(), InventoryLoader))
        raise StageFailed(f"test: play {stage} not run")

    def no_socket(address, *_args, **_kwargs):
        raise AssertionError(f"a connection to {address} was opened")

    monkeypatch.setattr("migrate.adapters.ansible.run_play", play)
    monkeypatch.setattr(socket, "create_connection", no_socket)
    monkeypatch.setattr("migrate.adapters.access.guard_address", lambda _context, _address: None)
    monkeypatch.setattr("migrate.adapters.access.pinned_key_mismatch", lambda *_a, **_k: None)
    return seen


def write_stage_inputs(opened) -> None:
    """What a transfer reads before its first play: secrets and the source hosts' keys."""
    from migrate.rehearsal.sandbox.estate import known_hosts_path

    secrets = opened.root / "secrets"
    secrets.mkdir(mode=0o700)
    for name in ("ssh-wjw", "db-fybj", "exchange-wjw-fybj"):
        (secrets / name).write_text(f"{name}-not-a-real-secret-0123456789abcdef\n")
        (secrets / name).chmod(0o600)
    known = known_hosts_path(opened)
    known.parent.mkdir(parents=True, exist_ok=True)
    known.write_text("".join(f"{host.address} {STATE_KEY}\n"
                             for host in opened.systems[SYSTEM].source.hosts))


def test_no_stack_means_no_targets_whatever_the_journal_says(opened) -> None:
    journal_provision(opened, FORGED)
    with pytest.raises(InvalidInput, match="no provisioned targets: run 'migrate provision"):
        pipeline.provisioned_targets(pipeline.context_of(opened), SYSTEM)


@pytest.mark.slow
def test_a_rewritten_journal_does_not_move_the_targets(opened, stack, inventories) -> None:
    journal_provision(opened, PROVISIONED)
    rewrite_provision_entries(opened, FORGED)

    assert pipeline.provisioned_targets(pipeline.context_of(opened), SYSTEM) == ACCESS
    write_stage_inputs(opened)
    (result,) = pipeline.move(pipeline.context_of(opened), "transfer", [SYSTEM])
    assert "test: play check_prerequisites not run" in result["error"]["message"], result
    (inventory,) = inventories
    targets = inventory["all"]["children"]["target"]["hosts"]
    assert {h["instance"]: h["ansible_host"] for h in targets.values()} == {
        name: t["address"] for name, t in ACCESS.items()}
    known = Path(inventory["all"]["vars"]["migrate_run_dir"]) / "known_hosts"
    assert FORGED_KEY.split()[1] not in known.read_text()
    assert "192.0.2.66" not in json.dumps(inventory)

    stack.destroy()
    journal_provision(opened, FORGED)
    with pytest.raises(InvalidInput, match="no provisioned targets: run 'migrate provision"):
        pipeline.provisioned_targets(pipeline.context_of(opened), SYSTEM)


@pytest.mark.slow
@pytest.mark.parametrize("stack", ["plain", "gzip"], indirect=True)
def test_secret_outputs_stay_secret_and_both_readers_agree(opened, stack) -> None:
    state = state_dir(opened)
    folder = state / "backend" / ".pulumi" / "stacks" / "migrate-sandbox"
    assert TOKEN not in json.dumps(provision.read_checkpoint(folder, STACK))
    read = provision.stack_outputs(state, "sandbox", STACK)
    assert read == {"instances": PROVISIONED, "token": provision.SECRET}
    assert read == provision.engine_outputs(state, engine.file_backend_url(state), "sandbox",
                                            STACK)
    assert TOKEN not in json.dumps(read)


def test_a_checkpoint_of_another_version_is_read_by_the_engine(
        opened, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = state_dir(opened) / "backend" / ".pulumi"
    (folder / "stacks" / "migrate-sandbox").mkdir(parents=True)
    (folder / "meta.yaml").write_text("version: 1\n")
    (folder / "stacks" / "migrate-sandbox" / f"{STACK}.json").write_text(json.dumps(
        {"version": 4, "checkpoint": {"latest": {"resources": [
            {"type": "pulumi:pulumi:Stack", "outputs": {"instances": FORGED}}]}}}))
    asked = []
    monkeypatch.setattr(provision, "engine_outputs",
                        lambda *args: asked.append(args[-1]) or {"instances": PROVISIONED})
    assert pipeline.provisioned_targets(pipeline.context_of(opened), SYSTEM) == ACCESS
    assert asked == [STACK]
