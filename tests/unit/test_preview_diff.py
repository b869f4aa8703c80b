"""preview --diff names each resource that would change, and provision shows that list
before it asks; the engine's events become that list (migrate.stages.provision.EventTracker)."""

from __future__ import annotations

import io
import json
import sys
from types import SimpleNamespace

from migrate.orchestrate import pipeline
from migrate.stages.provision import EventTracker, StackResult

INSTANCE = "openstack:compute/instanceV2:InstanceV2"


class TerminalInput(io.StringIO):
    def isatty(self) -> bool:
        return True


def fake_stacks(monkeypatch) -> list[str]:
    """run_stacks as a preview of two stacks would answer; the operations asked for."""
    asked = []

    def run_stacks(_estate, operation, _systems, _progress, leave_source_traces=False):
        asked.append(operation)
        return pipeline.ProvisionOutcome(operation, [
            StackResult("net-wjw", operation, {"create": 1}, resources=[
                {"op": "create", "type": "openstack:networking/network:Network",
                 "name": "net", "properties": []}]),
            StackResult("sys-wjw-fybj", operation, {"update": 1, "replace": 1}, resources=[
                {"op": "update", "type": INSTANCE, "name": "wjw-fybj-web",
                 "properties": ["flavor_name"]},
                {"op": "replace", "type": INSTANCE, "name": "wjw-fybj-db",
                 "properties": ["image_name"]}]),
            StackResult("sys-scj-qyxy", operation, {}, note="waits for network stack net-scj")])

    monkeypatch.setattr(pipeline, "run_stacks", run_stacks)
    return asked


def test_preview_diff_names_each_resource_and_how_it_changes(monkeypatch, run_cli, estate):
    fake_stacks(monkeypatch)
    result = run_cli("preview", estate, "--diff")
    assert result.code == 0, result.stderr
    text = " ".join(result.stdout.split())
    for shown in ("net-wjw │ create │ net │ Network", "update │ wjw-fybj-web │ InstanceV2 │ "
                  "flavor_name", "replace │ wjw-fybj-db │ InstanceV2 │ image_name",
                  "waits for network stack net-scj", "1 to create, 1 to replace, 1 to update"):
        assert shown in text, shown


def test_preview_json_lists_the_resources_of_each_stack(monkeypatch, run_cli, estate):
    fake_stacks(monkeypatch)
    document = json.loads(run_cli("preview", estate, "-o", "json").stdout)
    stacks = {s["stack"]: s["resources"] for s in document["stacks"]}
    assert [r["name"] for r in stacks["sys-wjw-fybj"]] == ["wjw-fybj-web", "wjw-fybj-db"]
    assert stacks["sys-scj-qyxy"] == []


def test_provision_shows_the_resources_before_it_asks(monkeypatch, run_cli, estate):
    asked = fake_stacks(monkeypatch)
    monkeypatch.setattr(sys, "stdin", TerminalInput("n\n"))
    result = run_cli("provision", estate)
    assert result.code == 1
    assert asked == ["preview"]  # answered no: nothing provisioned
    listed, question = result.stderr.index("wjw-fybj-db"), result.stderr.index("Provision ")
    assert listed < question and "image_name" in result.stderr


def test_provision_with_yes_asks_nothing_and_previews_nothing(monkeypatch, run_cli, estate):
    asked = fake_stacks(monkeypatch)
    assert run_cli("provision", estate, "--yes").code == 0
    assert asked == ["provision"]


def event(op: str, urn: str, kind: str, diffs=None, keys=None) -> dict:
    return {"resOutputsEvent": {"metadata": {"op": op, "urn": urn, "type": kind,
                                             "diffs": diffs, "keys": keys}}}


def urn(name: str, kind: str = INSTANCE) -> str:
    return f"urn:pulumi:sys-a::migrate-openstack::{kind}::{name}"


def test_the_tracker_lists_each_changed_resource_once():
    tracker = EventTracker("sys-a", lambda _line: None)
    for raw in (event("same", urn("sys-a", "pulumi:pulumi:Stack"), "pulumi:pulumi:Stack"),
                event("create", urn("default", "pulumi:providers:openstack"),
                      "pulumi:providers:openstack"),
                event("same", urn("web"), INSTANCE),
                event("update", urn("app"), INSTANCE, diffs=["flavor_name", "tags"]),
                event("create-replacement", urn("db"), INSTANCE, keys=["image_name"]),
                event("replace", urn("db"), INSTANCE, keys=["image_name"], diffs=["name"]),
                event("delete-replaced", urn("db"), INSTANCE),
                event("delete", urn("old"), INSTANCE)):
        tracker.raw(raw)
    assert tracker.resources == [
        {"op": "update", "type": INSTANCE, "name": "app", "properties": ["flavor_name", "tags"]},
        {"op": "replace", "type": INSTANCE, "name": "db", "properties": ["image_name", "name"]},
        {"op": "delete", "type": INSTANCE, "name": "old", "properties": []}]


def test_the_tracker_reads_the_automation_api_s_events_the_same_way():
    tracker = EventTracker("sys-a", lambda _line: None)
    metadata = SimpleNamespace(op=SimpleNamespace(value="update"), urn=urn("app"),
                               type=INSTANCE, diffs=["flavor_name"], keys=None)
    tracker(SimpleNamespace(res_outputs_event=SimpleNamespace(metadata=metadata),
                            diagnostic_event=None))
    assert tracker.resources == [{"op": "update", "type": INSTANCE, "name": "app",
                                  "properties": ["flavor_name"]}]


def test_destroy_shows_what_it_would_delete_before_it_asks(monkeypatch, run_cli, estate):
    asked = fake_stacks(monkeypatch)
    monkeypatch.setattr(sys, "stdin", TerminalInput("n\n"))
    result = run_cli("destroy", estate)
    assert result.code == 1
    assert asked == ["preview_destroy"]  # answered no: nothing deleted
    listed, question = result.stderr.index("wjw-fybj-db"), result.stderr.index("Destroy ")
    assert listed < question


def test_destroy_with_yes_asks_nothing_and_previews_nothing(monkeypatch, run_cli, estate):
    asked = fake_stacks(monkeypatch)
    assert run_cli("destroy", estate, "--yes").code == 0
    assert asked == ["destroy"]
