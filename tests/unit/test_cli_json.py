"""With --output json a command answers with exactly one JSON document, also when some of
its systems failed: the failure is in it, and the exit code says so."""

from __future__ import annotations

import json

import pytest

from migrate import pipeline


def failing_results(*_args, **_kwargs) -> list[dict]:
    return [{"system": "wjw-fybj", "result": "ok", "changed": 0, "duration_s": 1.0},
            {"system": "scj-qyxy", "result": "failed", "error": "host key changed",
             "hint": "check the host", "exit_code": 4, "duration_s": 0.5}]


@pytest.mark.parametrize("command", ["transfer", "check", "rollback", "verify"])
def test_a_partly_failed_stage_gives_one_json_document(estate, run_cli, monkeypatch, command):
    monkeypatch.setattr(pipeline, "move", failing_results)
    monkeypatch.setattr(pipeline, "verify_systems", failing_results)
    result = run_cli(command, estate, "--system", "wjw-fybj", "--system", "scj-qyxy",
                     "--output", "json")
    assert result.code == 4, result.stderr
    document = json.loads(result.stdout)  # one document: a second one would not parse
    assert [s["result"] for s in document["systems"]] == ["ok", "failed"]
    assert "scj-qyxy: host key changed" in document["error"]["message"]
    assert document["error"]["exit_code"] == 4


def test_a_stage_that_passes_gives_its_document_without_error(estate, run_cli, monkeypatch):
    monkeypatch.setattr(pipeline, "move", lambda *a, **k: failing_results()[:1])
    result = run_cli("transfer", estate, "--system", "wjw-fybj", "--output", "json")
    assert result.code == 0, result.stderr
    assert "error" not in json.loads(result.stdout)
