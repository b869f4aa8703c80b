"""Trust and discovery on the third-party wiki server: its key is recorded only when named
by fingerprint, and discovery's draft manifest for it validates, with the database and its
role, the web service, and the settings that name the server's address; no secret of the
server ends up in what discovery writes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from migrate.rehearsal.sandbox import hostkeys
from migrate.rehearsal.sandbox.layout import upper_dir
from migrate.stages import trust
from tests.foreign.estate import discovery_settings
from tests.foreign.server import ForeignServer

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

SYSTEM = "wjw-wiki"
MIGRATE_YAML = discovery_settings("卫健委知识库迁移上云")


def test_discovery_drafts_a_valid_manifest_for_the_wiki(
        foreign_server: ForeignServer, tmp_path: Path, run_cli,
        monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CI", "true")
    estate = tmp_path / "estate"
    (estate / "systems").mkdir(parents=True)
    (estate / "migrate.yaml").write_text(MIGRATE_YAML, encoding="utf-8")
    key = hostkeys.host_public_key(upper_dir(foreign_server.name, foreign_server.root))
    fingerprint = trust.fingerprint_of(key.split()[1])

    result = run_cli("trust", estate, "--host", foreign_server.address,
                     "--accept", fingerprint, "--yes")
    assert result.code == 0, result.stderr
    result = run_cli("discover", estate, "--system", SYSTEM, "--host", foreign_server.address,
                     "--key", foreign_server.access.key, "--output", "json")
    assert result.code == 0, result.stderr
    outcome = json.loads(result.stdout)["systems"][0]
    assert outcome["draft_valid"] is True, outcome["draft_problems"]

    draft = yaml.safe_load(Path(outcome["draft"]).read_text(encoding="utf-8"))
    assert draft["source"]["hosts"] == [
        {"name": foreign_server.hostname, "address": foreign_server.address,
         "roles": ["web", "db"]}]
    assert {(s["unit"], s["port"]) for s in draft["workload"]["services"]} >= {
        ("nginx.service", 80)}
    assert [(d["name"], d["user"]) for d in draft["workload"]["databases"]] == [
        (foreign_server.database, foreign_server.role)]
    rewrites = {(r["file"], r["old"]) for r in outcome["rewrites"]}
    assert (foreign_server.config, foreign_server.address) in rewrites
    assert ("/etc/postgresql/15/main/pg_hba.conf", foreign_server.address) in rewrites
    assert any(s["file"] == foreign_server.config for s in outcome["secrets"])
    (instance,) = draft["target"]["instances"]
    assert "mediawiki" in instance["packages"], instance["packages"]  # owns the web root
    # php-fpm behind nginx's unix socket, and the PostgreSQL module PHP loads
    assert {"php8.2-fpm", "php8.2-pgsql"} <= set(instance["packages"]), instance["packages"]
    assert {"host": foreign_server.hostname, "path": foreign_server.config} in \
        draft["workload"]["configuration"]
    assert {"host": foreign_server.hostname, "file": foreign_server.config,
            "old": foreign_server.address, "new": "${" + instance["name"] + "}"} in \
        draft["workload"]["rewrites"]
    assert not any(r["file"].startswith("/etc/postgresql/") for r in draft["workload"]["rewrites"])

    written = "\n".join(p.read_text(errors="replace") for p in (estate / ".migrate").rglob("*")
                        if p.is_file())
    assert foreign_server.db_password_file.read_text().strip() not in written

    assert draft["census"]["usage_frequency"]["monthly_active_users"] >= 30  # staff PCs

    shutil.copy(outcome["draft"], estate / "systems" / f"{SYSTEM}.yaml")
    result = run_cli("validate", estate)
    assert result.code == 0, result.stderr
    result = run_cli("census", estate, "--output", "json")
    assert result.code == 0, result.stderr
    census = {s["id"]: s for s in json.loads(result.stdout)["systems"]}
    assert census[SYSTEM]["disposition"] == "migrate", census[SYSTEM]["reason_details"]
