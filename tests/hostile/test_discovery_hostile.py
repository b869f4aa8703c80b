"""What a source host shows is not trusted: directory names, units, packages, databases and
settings the manifest rules refuse never reach a discovery draft as they are; they are left
out, named escaped in the draft's header, and the rest of the draft still validates."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import yaml

from migrate.orchestrate.pipeline import open_estate
from migrate.stages.discovery import draft_header
from migrate.stages.discovery.draft import DraftHost, build_draft, render, validate_draft

LOOKUP = "{{ lookup('pipe', 'id > /tmp/pwned') }}"
HOSTILE_DIRECTORIES = [f"/srv/{LOOKUP}", "/srv/app\nworkload: {}", "/", "/root/.ssh",
                       "/home/ops", "/var/www/{% raw %}x", "/srv/wiki/uploads"]


def listening(port: int, unit: str) -> dict:
    return {"address": "*", "port": port, "process": "p", "pids": [port], "loopback": False,
            "unit": unit}


OBSERVED = {
    "hardware": {"hostname": "wiki1", "cpus": 2, "mem_kb": 4028712, "root_used_kb": 3514880},
    "listening": [listening(8080, "wiki-app.service"), listening(81, "-H.service"),
                  listening(82, f"x{LOOKUP}.service")],
    "units": [{"unit": "wiki-app.service", "working_directory": "/srv/wiki"}],
    "data_directories": [{"path": "/srv/wiki", "size_kb": 9000},
                         *({"path": path, "size_kb": 9000} for path in HOSTILE_DIRECTORIES)],
    "postgresql": {
        "settings": {"data_directory": "/var/lib/postgresql/15/main"},
        "roles": [{"name": "wiki", "login": True, "superuser": False, "member_of": []}],
        "databases": [
            {"name": "wikidb", "owner": "wiki", "size_bytes": 8200000, "system": False},
            {"name": f"db{LOOKUP}", "owner": "wiki", "size_bytes": 100, "system": False}]},
    "package_owners": {"/srv/wiki": ["nginx-light", f"evil{LOOKUP}"]},
}
REWRITES = [
    {"host": "wiki1", "file": "/etc/wiki/wiki.conf", "line": 3, "old": "192.168.178.10",
     "new": "${wiki1}", "kind": "application"},
    {"host": "wiki1", "file": f"/etc/wiki/{LOOKUP}.conf", "line": 1, "old": "192.168.178.10",
     "new": "${wiki1}", "kind": "application"},
    {"host": "wiki1", "file": "/etc/ssh/sshd_config", "line": 9, "old": "192.168.178.10",
     "new": "${wiki1}", "kind": "application"},
    {"host": "wiki1", "file": "/etc/wiki/other.conf", "line": 2,
     "old": "{% set x = 1 %}192.168.178.10", "new": "${wiki1}", "kind": "application"},
]
FOUND_SECRETS = [{"file": "/etc/wiki/a.conf\nworkload: {}", "line": 4, "key": "password",
                  "proposed": "secret://wiki-a-conf"}]


def written_draft(estate: Path, tmp_path: Path):
    loaded = open_estate(estate)
    draft = build_draft(loaded, "dsj-wiki", [DraftHost("wiki1", "192.168.178.10", OBSERVED)],
                        "root", today=date(2026, 11, 20), rewrites=REWRITES)
    path = tmp_path / "dsj-wiki.draft.yaml"
    path.write_text(render(draft, draft_header("dsj-wiki", "192.168.178.10", FOUND_SECRETS)))
    return loaded, draft, path


def test_hostile_observations_do_not_reach_the_draft(estate: Path, tmp_path: Path) -> None:
    loaded, _draft, path = written_draft(estate, tmp_path)
    text = path.read_text()

    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    assert not any(marker in body for marker in ("{{", "{%", "{#")), body
    assert not any(value in text for value in (LOOKUP, "{% raw", "{% set")), "shown escaped only"
    data = yaml.safe_load(text)
    assert [f["path"] for f in data["workload"]["files"]] == ["/srv/wiki"]
    assert [s["unit"] for s in data["workload"]["services"]] == ["wiki-app.service"]
    assert [d["name"] for d in data["workload"]["databases"]] == ["wikidb"]
    assert data["target"]["instances"][0]["packages"] == ["nginx-light"]
    assert [r["file"] for r in data["workload"]["rewrites"]] == ["/etc/wiki/wiki.conf"]
    assert [c["path"] for c in data["workload"]["configuration"]] == ["/etc/wiki/wiki.conf"]
    assert validate_draft(loaded, path, str(path)) == []


def test_what_is_left_out_is_named_in_the_header(estate: Path, tmp_path: Path) -> None:
    _loaded, draft, path = written_draft(estate, tmp_path)
    text = path.read_text()
    header = [line for line in text.splitlines() if line.startswith("#")]

    assert len(draft.left_out) == 14, draft.left_out
    assert any('"/srv/\\u007b\\u007b lookup(' in line and "template markup" in line
               for line in header), header
    assert any('"/srv/app\\nworkload: \\u007b}"' in line for line in header), header
    assert any('"/srv/wiki/uploads": inside /srv/wiki' in line for line in header), header
    assert any('"/etc/ssh/sshd_config": lies in /etc/ssh' in line for line in header), header
    assert any('"-H.service": not a plain unit name' in line for line in header), header
    assert any("/etc/wiki/a.conf\\nworkload" in line for line in header), header
    body = [line for line in text.splitlines() if not line.startswith("#")]
    assert body[0] == "schema_version: 1", "the header stays a comment"
