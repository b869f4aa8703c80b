from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import yaml

from migrate import __version__
from migrate.core import schema
from tests.conftest import EXAMPLE_ESTATE, ROOT


def test_shipped_schemas_are_what_the_model_generates():
    for name, text in schema.render_schemas().items():
        assert (schema.SCHEMA_DIR / name).read_text(encoding="utf-8") == text, (
            f"migrate/schemas/{name} is stale: run 'migrate schema migrate/schemas'")


def test_manifest_reference_is_what_the_model_generates():
    assert (ROOT / "docs/manifest-reference.md").read_text(encoding="utf-8") == \
        schema.reference_markdown(), "run 'migrate schema --reference > docs/manifest-reference.md'"


def _as_json_types(value):
    if isinstance(value, dict):
        return {k: _as_json_types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_json_types(v) for v in value]
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def test_example_manifests_validate_against_the_shipped_json_schema():
    system_schema = json.loads((schema.SCHEMA_DIR / "system.schema.json").read_text())
    estate_schema = json.loads((schema.SCHEMA_DIR / "migrate.schema.json").read_text())
    checker = jsonschema.Draft202012Validator
    settings = yaml.safe_load((EXAMPLE_ESTATE / "migrate.yaml").read_text(encoding="utf-8"))
    checker(estate_schema).validate(_as_json_types(settings))
    manifests = sorted((EXAMPLE_ESTATE / "systems").glob("*.yaml"))
    assert len(manifests) >= 8
    for path in manifests:
        checker(system_schema).validate(_as_json_types(yaml.safe_load(path.read_text("utf-8"))))


def test_json_schema_catches_an_unknown_key_too():
    system_schema = json.loads((schema.SCHEMA_DIR / "system.schema.json").read_text())
    doc = _as_json_types(yaml.safe_load((EXAMPLE_ESTATE / "systems/rsj-sbcx.yaml").read_text(
        encoding="utf-8")))
    doc["protecton_level"] = 2
    errors = list(jsonschema.Draft202012Validator(system_schema).iter_errors(doc))
    assert any("protecton_level" in e.message for e in errors)


def test_schema_command_writes_the_three_files(run_cli, tmp_path):
    result = run_cli("schema", tmp_path / "schemas", "--output", "json")
    assert result.code == 0
    files = sorted(Path(p).name for p in json.loads(result.stdout)["files"])
    assert files == ["migrate.schema.json", "plan.schema.json", "system.schema.json"]


def test_version_and_help(run_cli):
    result = run_cli("--version")
    assert result.code == 0 and __version__ in result.stdout
    for command in ("validate", "census", "plan", "schema"):
        result = run_cli(command, "--help")
        assert result.code == 0 and "Usage: migrate" in result.stdout


def test_unknown_command_and_option_are_usage_errors(run_cli):
    assert run_cli("planify").code == 2
    assert run_cli("plan", "--colour").code == 2


def test_validate_json_reports_warnings_for_missing_secrets(run_cli, estate):
    result = run_cli("validate", estate, "--output", "json")
    assert result.code == 0
    document = json.loads(result.stdout)
    assert document["valid"] is True and len(document["systems"]) == 10
    assert {w["path"] for w in document["warnings"]} == {"secrets.dir", "exchange.ca_bundle"}


def test_census_writes_the_three_lists_as_markdown_and_csv(run_cli, estate):
    result = run_cli("census", estate, "--output", "json")
    assert result.code == 0
    names = sorted(Path(p).name for p in json.loads(result.stdout)["files"])
    assert names == ["cleanup_list.csv", "cleanup_list.md", "connect_list.csv",
                     "connect_list.md", "self_inspection.csv", "self_inspection.md"]
    folder = estate / ".migrate/reports/census"
    cleanup = (folder / "cleanup_list.csv").read_text(encoding="utf-8").splitlines()
    assert len(cleanup) == 1 + 4
    assert {row.split(",")[0] for row in cleanup[1:]} == {
        "fgw-xyxx", "gaj-rkhc", "rsj-ldjc", "yjj-yjzh"}
    connect = (folder / "connect_list.md").read_text(encoding="utf-8")
    assert "接入共享平台清单" in connect and "| zrj-bdcdj |" in connect
    assert "gaj-rkhc" not in connect


def test_census_table_output_shows_every_system(run_cli, estate):
    result = run_cli("census", estate)
    assert result.code == 0
    for sid in ("gaj-rkhc", "rsj-ldjc", "fgw-xyxx", "mzj-shjz"):
        assert sid in result.stdout


def test_console_script_prints_no_traceback_on_bad_input(tmp_path):
    (tmp_path / "migrate.yaml").write_text("schema_version: [\n", encoding="utf-8")
    run = subprocess.run([str(Path(sys.executable).parent / "migrate"), "plan", str(tmp_path)],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 2
    assert "not valid YAML" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / ".migrate").exists()


def test_provision_and_destroy_without_yes_off_a_terminal_are_refused(run_cli, estate):
    for command in ("provision", "destroy"):
        result = run_cli(command, estate, "--system", "wjw-fybj")
        assert result.code == 2, result.stderr
        assert "without --yes" in result.stderr
        assert not (estate / ".migrate").exists()


def test_wave_selects_the_systems_of_that_wave_of_the_plan(estate):
    from migrate.orchestrate import pipeline

    context = pipeline.open_context(estate)
    assert pipeline.systems_of_wave(context, 2) == ["rsj-sbcx", "zrj-bdcdj"]
    assert pipeline.systems_of_wave(context, 3) == ["mzj-shjz"]


def test_a_wave_the_plan_does_not_have_is_invalid_input(run_cli, estate):
    for command in (("transfer",), ("register",), ("preview",)):
        result = run_cli(*command, estate, "--wave", "9")
        assert result.code == 2, result.stderr
        assert "the plan has no wave 9 (waves: 1, 2, 3)" in result.stderr


def test_the_confirmation_names_the_wave(run_cli, estate):
    result = run_cli("cutover", estate, "--wave", "2")
    assert result.code == 2
    assert "Cut over the systems of wave 2?" in result.stderr
