"""The estate that moves the department wiki: it validates and plans (no root needed), and
discovery on the running server finds nothing its manifest misses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from migrate.rehearsal.sandbox import hostkeys
from tests.foreign.estate import SYSTEM, write_wiki_estate
from tests.foreign.server import ForeignServer, visit_today


@pytest.fixture
def offline_estate(tmp_path: Path) -> Path:
    key = tmp_path / "id_ed25519"
    key.write_text("not a key: validation and planning never read it\n")
    return write_wiki_estate(tmp_path / "estate", address="192.168.177.10", ssh_key=key,
                             db_password="not-the-password")


def test_the_wiki_estate_validates_and_migrates(run_cli, offline_estate: Path):
    result = run_cli("validate", offline_estate)
    assert result.code == 0, result.stderr
    result = run_cli("census", offline_estate, "--output", "json")
    census = {s["id"]: s for s in json.loads(result.stdout)["systems"]}
    assert census[SYSTEM]["disposition"] == "migrate", census[SYSTEM]["reason_details"]


def test_the_wiki_estate_plans_one_wave_with_its_database_dumped(run_cli, offline_estate: Path):
    result = run_cli("plan", offline_estate, "--output", "json")
    assert result.code == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["waves"] == [{"number": 1, "systems": [SYSTEM]}]
    system = next(s for s in plan["systems"] if s["id"] == SYSTEM)
    assert [(d["name"], d["user"], d["method"]) for d in system["data"]["databases"]] == [
        ("wikidb", "wikiuser", "final_dump")]
    [instance] = system["instances"]
    assert instance["packages"] == ["mediawiki", "php-pgsql", "php8.2-fpm"]
    [rewrite] = instance["rewrites"]
    assert rewrite["file"] == "/etc/mediawiki/LocalSettings.php"
    assert (rewrite["old"], rewrite["new"]) == ("192.168.177.10", instance["address"])


@pytest.mark.sandbox
@pytest.mark.slow
def test_discovery_finds_nothing_the_manifest_misses(foreign_server: ForeignServer,
                                                     tmp_path: Path, run_cli,
                                                     monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CI", "true")
    line = hostkeys.known_hosts_line(foreign_server.name, foreign_server.address,
                                     foreign_server.root)
    # the server's last requests were made when it booted, perhaps the day before
    today = visit_today(foreign_server.address)
    estate = write_wiki_estate(
        tmp_path / "estate", address=foreign_server.address, ssh_key=foreign_server.access.key,
        db_password=foreign_server.db_password_file.read_text().strip(),
        known_hosts=line + "\n", today=today)
    result = run_cli("discover", estate, "--output", "json")
    assert result.code == 0, result.stderr
    outcome = json.loads(result.stdout)["systems"][0]
    assert outcome["gaps"] == []  # the declared uploads under the web root are measured too
    assert outcome["census_differences"] == []
    uploads = foreign_server.ssh(f"find {foreign_server.data_dir} -name '*.png' | wc -l")
    assert int(uploads) >= 1
