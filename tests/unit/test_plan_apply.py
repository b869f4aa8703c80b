"""The plan computed once per command and journaled only when it changed; plan.json as a
typed document with a shipped schema; provision and run applying the reviewed plan.json and
refusing, naming what changed, when the estate no longer gives it (issues 18 and 21).

The stages below the pipeline are faked (the Pulumi engine, the plays, the exchange
platform, verification): what runs for real is the CLI, the pipeline, ``migrate run``'s
orchestration, the planning, runbooks, report and journal."""

from __future__ import annotations

import contextlib
import io
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import jsonschema
import pytest

from migrate.core import schema
from migrate.core.state import journal_for
from migrate.orchestrate import pipeline
from migrate.stages.provision import StackResult

SYSTEM = "wjw-fybj"


@dataclass
class Done:
    system: str
    outputs: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"system": self.system, "changed": 1, "outputs": self.outputs,
                "duration_s": 0.1, "run_id": "fake"}


@pytest.fixture
def stages(monkeypatch) -> list:
    """Everything under the pipeline faked; the stack operations and plays asked for."""
    from migrate.rehearsal.sandbox import estate as sandbox_estate
    from migrate.stages import move, register
    from migrate.stages.verify import answers
    from migrate.stages.verify import run as verify_run

    asked: list = []

    class Provisioner:
        def __init__(self, _settings, _progress=None):
            pass

        def _results(self, operation, networks, systems):
            asked.append((operation, sorted(t.key for t in systems)))
            return [StackResult(t.name, operation, {"create": 1}) for t in [*networks, *systems]]

        def up(self, networks, systems):
            return self._results("provision", networks, systems)

        def preview(self, networks, systems):
            return self._results("preview", networks, systems)

    def play(stage):
        def run(context, sid, _targets, _progress=None, check=False, **_kw):
            asked.append((stage, sid))
            context.journal.append(stage, system=sid, outputs={"changed": 1})
            return Done(sid)
        return run

    def verify_system(context, sid, _targets, _progress=None, *, instances):
        assert instances is pipeline.system_instances  # the reader pipeline hands the stage
        asked.append(("verify", sid))
        context.journal.append("verify", system=sid, outputs={"counts": {"passed": 1}})
        return {"passed": True, "run_id": "fake", "result": "ok", "counts": {"passed": 1},
                "failed_checks": [], "duration_s": 0.1}

    def register_catalogue(system, _planned, _client, side="target"):
        asked.append(("register", system.id))
        return {"system": system.id, "changed": False, "linked": 1, "resources": [{}],
                "endpoint": {"base_url": f"https://{side}"}}

    monkeypatch.setattr(sandbox_estate, "sandbox_up",
                        lambda estate, progress=None, scale=None: SimpleNamespace(changed=False))
    monkeypatch.setattr(pipeline, "check_source_host_keys", lambda _context, ids: len(ids))
    monkeypatch.setattr(pipeline, "provision_settings", lambda _estate, _path: None)
    monkeypatch.setattr(pipeline, "Provisioner", Provisioner)
    monkeypatch.setattr(pipeline, "provisioned_targets",
                        lambda _context, _sid: {"web": {"address": "10.9.9.9", "host_key": "k"}})
    monkeypatch.setattr(pipeline, "guard_system", lambda *_args: None)
    monkeypatch.setattr(pipeline, "platform_client",
                        lambda _context, _sid: contextlib.nullcontext(None))
    # the package's attributes: pipeline looks the stage functions up there when it runs them
    monkeypatch.setattr(move, "transfer", play("transfer"))
    monkeypatch.setattr(move, "cutover", play("cutover"))
    monkeypatch.setattr(answers, "record_source_answers", lambda *_args: None)
    monkeypatch.setattr(verify_run, "verify_system", verify_system)
    monkeypatch.setattr(register, "register_catalogue", register_catalogue)
    return asked


def plan_entries(estate: Path) -> list[dict]:
    return [e for e in journal_for(pipeline.open_estate(estate)).entries()
            if e["stage"] == "plan"]


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new), encoding="utf-8")


WEB = "{name: web, replaces: [web1], vcpu: 2, memory_gb: 4, disk_gb: 60,  image: debian-12}"
BIGGER_WEB = WEB.replace("vcpu: 2, memory_gb: 4", "vcpu: 4, memory_gb: 8")


# ---------------------------------------------------------------- once per command


def test_a_run_of_one_system_journals_its_plan_once_and_a_rerun_not_at_all(
        estate, run_cli, stages):
    result = run_cli("run", estate, "--system", SYSTEM, "--yes", "-o", "json")
    assert result.code == 0, result.stdout + result.stderr
    assert ("cutover", SYSTEM) in stages and ("verify", SYSTEM) in stages  # the whole way
    assert len(plan_entries(estate)) == 1
    assert "no plan yet: planned first" in result.stderr  # a fresh estate plans, and says so
    again = run_cli("run", estate, "--system", SYSTEM, "--yes", "-o", "json")
    assert again.code == 0, again.stdout + again.stderr
    assert len(plan_entries(estate)) == 1


def test_plan_twice_journals_once_and_a_changed_plan_again(estate, run_cli):
    assert run_cli("plan", estate).code == 0
    assert run_cli("plan", estate).code == 0
    assert len(plan_entries(estate)) == 1
    edit(estate / "systems" / f"{SYSTEM}.yaml", WEB, BIGGER_WEB)
    assert run_cli("plan", estate).code == 0
    entries = plan_entries(estate)
    assert len(entries) == 2 and entries[0]["outputs"]["digest"] != \
        entries[1]["outputs"]["digest"]
    assert set(entries[1]["outputs"]) == {"plan", "digest", "changed", "waves"}


def test_a_stage_command_with_wave_plans_once(estate, run_cli, stages):
    assert run_cli("plan", estate).code == 0
    (estate / ".migrate" / "plan.json").unlink()  # so that every planning would journal
    result = run_cli("provision", estate, "--wave", "1", "--yes")
    assert result.code == 0, result.stderr
    assert len(plan_entries(estate)) == 2  # the plan command's, and provision's one


# ---------------------------------------------------------------- plan, then apply


def test_provision_refuses_a_changed_estate_naming_the_change(estate, run_cli, stages):
    assert run_cli("plan", estate).code == 0
    reviewed = (estate / ".migrate" / "plan.json").read_bytes()
    journal = (estate / ".migrate" / "journal.jsonl").read_bytes()
    edit(estate / "systems" / f"{SYSTEM}.yaml", WEB, BIGGER_WEB)
    result = run_cli("provision", estate, "--system", SYSTEM, "--yes", "-o", "json")
    assert result.code == 2
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "PlanChanged"
    assert f"{SYSTEM}: instance web flavor c2m4 -> c4m8" in error["changes"]
    assert "--replan" in error["hint"] and "migrate plan" in error["hint"]
    assert stages == []  # nothing was provisioned
    assert (estate / ".migrate" / "plan.json").read_bytes() == reviewed
    assert (estate / ".migrate" / "journal.jsonl").read_bytes() == journal


def test_provision_with_replan_or_after_plan_applies_the_new_plan(estate, run_cli, stages):
    assert run_cli("plan", estate).code == 0
    edit(estate / "systems" / f"{SYSTEM}.yaml", WEB, BIGGER_WEB)
    result = run_cli("provision", estate, "--system", SYSTEM, "--yes", "--replan")
    assert result.code == 0, result.stderr
    assert "re-planned" in result.stderr and "flavor c2m4 -> c4m8" in result.stderr
    plan = json.loads((estate / ".migrate" / "plan.json").read_text(encoding="utf-8"))
    web = next(i for s in plan["systems"] if s["id"] == SYSTEM for i in s["instances"]
               if i["name"] == "web")
    assert web["flavor"] == "c4m8"
    edit(estate / "systems" / f"{SYSTEM}.yaml", BIGGER_WEB, WEB)
    assert run_cli("provision", estate, "--system", SYSTEM, "--yes").code == 2
    assert run_cli("plan", estate).code == 0  # the re-plan a reviewer makes
    assert run_cli("provision", estate, "--system", SYSTEM, "--yes").code == 0
    assert [op for op, _ in stages] == ["provision", "provision"]


def test_run_refuses_a_changed_estate_before_anything_is_journaled(estate, run_cli, stages):
    assert run_cli("plan", estate).code == 0
    journal = (estate / ".migrate" / "journal.jsonl").read_bytes()
    edit(estate / "systems" / f"{SYSTEM}.yaml", "    - {from: exchange, to: web, port: 8080}\n",
         "    - {from: exchange, to: web, port: 8080}\n    - {from: ops, to: web, port: 8443}\n")
    result = run_cli("run", estate, "--system", SYSTEM, "--yes")
    assert result.code == 2, result.stderr
    assert "no longer matches the reviewed plan" in result.stderr
    assert f"{SYSTEM}: rule added: web ingress tcp/8443 from ops" in result.stderr
    assert stages == []
    assert (estate / ".migrate" / "journal.jsonl").read_bytes() == journal


def test_what_does_not_change_the_plan_s_substance_is_never_refused(estate, run_cli, stages):
    assert run_cli("plan", estate).code == 0
    reviewed = (estate / ".migrate" / "plan.json").read_bytes()
    manifest = estate / "systems" / f"{SYSTEM}.yaml"
    manifest.write_text(manifest.read_text(encoding="utf-8") + "# reviewed 2026-12-01\n",
                        encoding="utf-8")  # the file's digest changes, the plan does not
    edit(estate / "migrate.yaml", "as_of: 2026-11-20", "as_of: 2026-11-27")  # a week later
    result = run_cli("provision", estate, "--system", SYSTEM, "--yes")
    assert result.code == 0, result.stderr
    assert (estate / ".migrate" / "plan.json").read_bytes() == reviewed  # applied as reviewed
    again = run_cli("run", estate, "--system", SYSTEM, "--yes")
    assert again.code == 0, again.stderr


def test_other_stage_commands_use_the_reviewed_plan_and_say_the_estate_moved_on(
        estate, run_cli, stages):
    assert run_cli("plan", estate).code == 0
    reviewed = (estate / ".migrate" / "plan.json").read_bytes()
    edit(estate / "systems" / f"{SYSTEM}.yaml", WEB, BIGGER_WEB)
    result = run_cli("preview", estate, "--system", SYSTEM)
    assert result.code == 0, result.stderr
    assert "no longer matches the reviewed plan" in result.stderr
    assert "flavor c2m4 -> c4m8" in result.stderr
    assert (estate / ".migrate" / "plan.json").read_bytes() == reviewed
    # so a command other than plan never replaces the plan provision then applies
    assert run_cli("provision", estate, "--system", SYSTEM, "--yes").code == 2


def test_preview_shows_what_provisioning_the_estate_as_it_is_now_would_do(
        estate, run_cli, stages, monkeypatch):
    """Edit, preview, review, provision: preview works to the estate's new plan (written
    beside plan.json, not journaled), while plan.json stays the reviewed one."""
    assert run_cli("plan", estate).code == 0
    reviewed = (estate / ".migrate" / "plan.json").read_bytes()
    entries = len(plan_entries(estate))
    given: list[Path] = []
    monkeypatch.setattr(pipeline, "provision_settings",
                        lambda _estate, path: given.append(path))
    edit(estate / "systems" / f"{SYSTEM}.yaml", WEB, BIGGER_WEB)
    result = run_cli("preview", estate, "--system", SYSTEM)
    assert result.code == 0, result.stderr
    assert "previewing the estate as it is now" in result.stderr
    (previewed,) = given
    assert previewed.name == pipeline.PREVIEW_PLAN
    instances = {i["name"]: i for s in json.loads(previewed.read_text())["systems"]
                 if s["id"] == SYSTEM for i in s["instances"]}
    assert instances["web"]["flavor"] == "c4m8"
    assert (estate / ".migrate" / "plan.json").read_bytes() == reviewed
    assert len(plan_entries(estate)) == entries  # a preview reviews nothing
    assert stages == [("preview", [SYSTEM])]


def test_a_hand_edited_plan_json_is_refused(estate, run_cli, stages):
    assert run_cli("plan", estate).code == 0
    path = estate / ".migrate" / "plan.json"
    plan = json.loads(path.read_text(encoding="utf-8"))
    plan["systems"][0]["instances"][0]["flavour"] = "big"
    path.write_text(json.dumps(plan), encoding="utf-8")
    result = run_cli("provision", estate, "--system", SYSTEM, "--yes")
    assert result.code == 2 and "flavour" in result.stderr
    assert stages == []


def test_the_changes_are_named_in_short_lines():
    from migrate.core.plan import plan_changes, plan_substance

    old = json.loads((Path(__file__).parents[1] / "golden" / "example-plan.json").read_text())
    new = json.loads(json.dumps(old))
    assert plan_changes(old, new) == []
    new["as_of"], new["inputs"]["migrate.yaml"] = "2027-01-01", "0" * 64
    new["not_planned"][0]["reasons"] = ["worded otherwise"]
    assert plan_changes(old, new) == [] and plan_substance(old) == plan_substance(new)
    system = next(s for s in new["systems"] if s["id"] == SYSTEM)
    system["instances"][0]["address"] = "10.20.1.99"
    system["security_rules"].pop()
    new["systems"] = [s for s in new["systems"] if s["id"] != "mzj-shjz"]
    new["not_planned"].append({"id": "mzj-shjz", "disposition": "decommission",
                               "reasons": [], "merge_into": None})
    new["networks"][0]["cidr"] = "10.99.0.0/24"
    lines = plan_changes(old, new)
    assert "systems removed: mzj-shjz (now decommission)" in lines
    assert any(line.startswith(f"{SYSTEM}: instance ") and "address" in line and
               "-> 10.20.1.99" in line for line in lines)
    assert any(line.startswith(f"{SYSTEM}: rule removed: ") for line in lines)
    assert any(line.startswith("network ") and "-> 10.99.0.0/24" in line for line in lines)
    for moved in new["systems"]:
        moved["wave"] += 1
    cut = plan_changes(old, new, limit=3)
    assert len(cut) == 3 and cut[-1].startswith("... and ") and cut[-1].endswith(" more")


# ---------------------------------------------------------------- the plan's schema


def shipped_plan_schema() -> dict:
    return json.loads((schema.SCHEMA_DIR / "plan.schema.json").read_text(encoding="utf-8"))


def written_plan_fits_its_schema(estate: Path) -> dict:
    """The estate's plan.json, checked against the shipped schema and the model."""
    from migrate.core.plan_document import PlanDocument

    plan = json.loads((estate / ".migrate" / "plan.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(shipped_plan_schema()).validate(plan)
    # exclude_unset: a key only some targets plan (floating_ip) stays absent where it was
    assert PlanDocument.model_validate(plan).model_dump(by_alias=True, exclude_unset=True) \
        == plan
    return plan


def test_a_real_plan_validates_against_the_shipped_schema_and_the_model(estate, run_cli):

    assert run_cli("plan", estate).code == 0
    plan = written_plan_fits_its_schema(estate)
    plan["systems"][0]["instances"][0]["flavour"] = "big"
    assert any("flavour" in e.message
               for e in jsonschema.Draft202012Validator(shipped_plan_schema()).iter_errors(plan))


def test_a_new_estate_s_plan_validates_too(tmp_path, run_cli):
    assert run_cli("init", tmp_path / "new").code == 0
    result = run_cli("plan", tmp_path / "new", "-o", "json")
    assert result.code == 0, result.stderr
    shipped = json.loads((schema.SCHEMA_DIR / "plan.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(shipped).validate(
        json.loads((tmp_path / "new" / ".migrate" / "plan.json").read_text(encoding="utf-8")))


def test_a_plan_with_a_package_mirror_validates_too(tmp_path):
    from tests.foreign.estate import write_wiki_estate

    key = tmp_path / "id_ed25519"
    key.write_text("not a key: planning never reads it\n")
    wiki = write_wiki_estate(tmp_path / "wiki", address="192.168.177.10", ssh_key=key,
                             db_password="not-the-password")
    plan = json.loads(pipeline.render_plan(
        pipeline.make_plan(pipeline.open_context(wiki), write=False).plan))
    assert any(r["peer"]["kind"] == "package_mirror"
               for s in plan["systems"] for r in s["security_rules"])
    shipped = json.loads((schema.SCHEMA_DIR / "plan.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(shipped).validate(plan)



class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True

def test_run_on_a_terminal_names_the_change_before_it_asks(estate, run_cli, stages,
                                                           monkeypatch):
    assert run_cli("plan", estate).code == 0
    edit(estate / "systems" / f"{SYSTEM}.yaml", "    - {from: exchange, to: web, port: 8080}\n",
         "    - {from: exchange, to: web, port: 8080}\n    - {from: ops, to: web, port: 8443}\n")
    monkeypatch.setattr(sys, "stdin", Terminal(""))  # would answer nothing: never asked
    result = run_cli("run", estate, "--system", SYSTEM)
    assert result.code == 2, result.stderr
    assert "rule added: web ingress tcp/8443 from ops" in result.stderr
    assert "Move " not in result.stderr and stages == []
