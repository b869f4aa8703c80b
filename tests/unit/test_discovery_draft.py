"""Draft manifests and manifest gaps from an observed host (no machine): the draft validates
with the project's validator, placeholders are marked, secrets are references."""

from __future__ import annotations

import copy
from datetime import date
from pathlib import Path

import yaml

from migrate.core.model import SystemManifest
from migrate.orchestrate.pipeline import open_estate
from migrate.stages.discovery import gaps
from migrate.stages.discovery.draft import (
    DraftHost,
    build_draft,
    packages_of,
    render,
    validate_draft,
)

OBSERVED = {
    "os": {"id": "debian", "version_id": "12", "pretty_name": "Debian GNU/Linux 12 (bookworm)"},
    "hardware": {"hostname": "Wiki1.dept.local", "cpus": 2, "mem_kb": 4028712,
                 "root_kb": 61255492, "root_used_kb": 3514880},
    "packages": [{"name": "nginx-light", "version": "1.22.1-9", "arch": "amd64"}],
    "listening": [
        {"address": "*", "port": 22, "process": "sshd", "pids": [1], "loopback": False,
         "unit": "ssh.service"},
        {"address": "*", "port": 80, "process": "nginx", "pids": [2], "loopback": False,
         "unit": "nginx.service"},
        {"address": "127.0.0.1", "port": 5432, "process": "postgres", "pids": [3],
         "loopback": True, "unit": "postgresql@15-main.service"},
        {"address": "*", "port": 8080, "process": "python3", "pids": [4], "loopback": False,
         "unit": "wiki-app.service"},
        {"address": "*", "port": 9100, "process": "agent", "pids": [5], "loopback": False,
         "unit": None},
    ],
    "units": [{"unit": "wiki-app.service", "working_directory": "/srv/wiki"}],
    "data_directories": [{"path": "/srv/wiki", "size_kb": 2100},
                         {"path": "/srv/reports", "size_kb": 5200},
                         {"path": "/var/www/html", "size_kb": 8}],
    "postgresql": {
        "engine": "postgresql", "version": "15.10",
        "settings": {"data_directory": "/var/lib/postgresql/15/main"},
        "roles": [{"name": "postgres", "login": True, "superuser": True, "member_of": []},
                  {"name": "wiki", "login": True, "superuser": False, "member_of": []},
                  {"name": "wiki_ro", "login": True, "superuser": False, "member_of": []}],
        "databases": [
            {"name": "postgres", "owner": "postgres", "size_bytes": 7537199, "system": True},
            {"name": "wikidb", "owner": "wiki", "size_bytes": 8200000, "system": False,
             "connect_grantees": ["PUBLIC", "wiki", "wiki_ro"], "table_owners": ["wiki"],
             "table_grantees": ["wiki", "wiki_ro"], "schema_owners": ["pg_database_owner"]},
            {"name": "reports", "owner": "postgres", "size_bytes": 7600000, "system": False,
             "connect_grantees": [], "table_owners": ["wiki"], "table_grantees": ["wiki"],
             "schema_owners": []},
        ]},
    "cron": [{"file": "/etc/cron.d/wiki-backup", "user": "postgres", "schedule": "15 2 * * *",
              "command": "pg_dump wikidb", "package": False, "environment": ["PGPASSWORD"]}],
    "web_access": {"files": ["/var/log/nginx/access.log"],
                   "first_request": "2026-09-01T00:00:00+08:00",
                   "last_request": "2026-11-02T09:30:00+08:00",
                   "months": [{"month": "2026-10", "requests": 900, "distinct_clients": 61}],
                   "monthly_users": {"month": "2026-10", "distinct_clients": 61,
                                     "partial": False}},
    "address_mentions": [{"file": "/etc/wiki/wiki.conf", "line": 3,
                          "text": "db_host = 192.168.178.10"}],
    "secrets": [{"file": "/etc/wiki/wiki.conf", "line": 4, "key": "db_password"}],
}


def _draft_in(estate: Path, tmp_path: Path):
    loaded = open_estate(estate)
    draft = build_draft(loaded, "dsj-wiki", [DraftHost("wiki1", "192.168.178.10", OBSERVED)],
                        "root", today=date(2026, 11, 20))
    path = tmp_path / "dsj-wiki.draft.yaml"
    path.write_text(render(draft, ["Draft", ""]))
    return loaded, draft, path


def test_the_draft_validates_and_marks_its_placeholders(estate: Path, tmp_path: Path) -> None:
    loaded, draft, path = _draft_in(estate, tmp_path)
    assert validate_draft(loaded, path, str(path)) == []
    text = path.read_text()
    data = yaml.safe_load(text)
    manifest = SystemManifest.model_validate(data, strict=False)
    assert [(s.name, s.unit, s.port) for s in manifest.workload.services] == [
        ("nginx", "nginx.service", 80), ("wiki-app", "wiki-app.service", 8080)]
    assert [(f.path, f.size_gb) for f in manifest.workload.files] == [
        ("/srv/wiki", 0.01), ("/srv/reports", 0.01)]
    assert [(d.name, d.user, d.password) for d in manifest.workload.databases] == [
        ("wikidb", "wiki", "secret://db-wikidb"), ("reports", "wiki", "secret://db-reports")]
    assert manifest.source.hosts[0].name == "wiki1"
    assert manifest.source.ssh.key == "secret://ssh-dsj-wiki"
    assert manifest.census.usage_frequency.monthly_active_users == 61
    assert manifest.census.usage_frequency.last_used == date(2026, 11, 2)
    assert manifest.target.instances[0].vcpu == 2
    assert manifest.target.instances[0].memory_gb == 4
    paths = {p["path"] for p in draft.placeholders}
    assert {"name", "function", "protection_level", "census.approval.document",
            "workload.files[0].daily_change_gb", "workload.databases[0].password"} <= paths
    assert "census.usage_frequency.monthly_active_users" not in paths  # observed, not guessed
    assert "name: \"TODO dsj-wiki\"  # TODO(discover): " in text
    assert "monthly_active_users: 61  # observed: distinct clients in 2026-10" in text


def test_a_draft_problem_is_reported_with_its_line(estate: Path, tmp_path: Path) -> None:
    loaded, _draft, path = _draft_in(estate, tmp_path)
    # the example estate's rsj-sbcx already uses 192.168.10.21: the validator says so
    path.write_text(path.read_text().replace("192.168.178.10", "192.168.10.21"))
    problems = validate_draft(loaded, path, str(path))
    assert problems and any("192.168.10.21" in p.message for p in problems)
    assert all(p.line is not None for p in problems if p.file == str(path))


def _declared(estate: Path, tmp_path: Path) -> SystemManifest:
    _loaded, _draft, path = _draft_in(estate, tmp_path)
    data = yaml.safe_load(path.read_text())
    data["workload"]["services"] = data["workload"]["services"][:1]  # nginx only
    data["workload"]["services"].append({"name": "gone", "host": "wiki1",
                                         "unit": "gone.service", "port": 8443})
    data["workload"]["files"] = [{"host": "wiki1", "path": "/srv/wiki/uploads", "size_gb": 40}]
    data["workload"]["databases"] = data["workload"]["databases"][:1]
    data["census"]["usage_frequency"] = {"monthly_active_users": 12000,
                                         "last_used": date(2026, 6, 1)}
    return SystemManifest.model_validate(data, strict=False)


def test_gaps_name_what_the_manifest_misses(estate: Path, tmp_path: Path) -> None:
    system = _declared(estate, tmp_path)
    observed = copy.deepcopy(OBSERVED)
    observed["data_directories"].append({"path": "/srv/wiki/uploads", "size_kb": 1500})
    found = gaps.manifest_gaps(system, {"wiki1": observed})
    kinds = sorted((f["kind"], f.get("unit") or f.get("path") or f.get("database") or "")
                   for f in found)
    assert kinds == [
        ("declared_service_not_listening", "gone.service"),
        ("size_differs", "/srv/wiki/uploads"),
        ("undeclared_data_directory", "/srv/reports"),
        ("undeclared_database", "reports"),
        ("undeclared_service", ""),  # the agent on 9100 has no unit
        ("undeclared_service", "wiki-app.service"),
    ]
    assert all(f["message"] for f in found)


def test_census_differences_and_proposals(estate: Path, tmp_path: Path) -> None:
    system = _declared(estate, tmp_path)
    differences = gaps.census_differences(system, {"wiki1": OBSERVED})
    assert [(d["field"], d["declared"], d["observed"]) for d in differences] == [
        ("monthly_active_users", 12000, 61), ("last_used", "2026-06-01", "2026-11-02")]
    rewrites = gaps.rewrite_proposals({"192.168.178.10": "web"}, {"wiki1": OBSERVED})
    assert rewrites == [{"host": "wiki1", "file": "/etc/wiki/wiki.conf", "line": 3,
                         "old": "192.168.178.10", "new": "${web}",
                         "kind": "application", "context": "db_host = 192.168.178.10"}]
    secrets = gaps.secret_proposals("dsj-wiki", {"wiki1": OBSERVED})
    assert secrets[0]["proposed"] == "secret://dsj-wiki-wiki-conf-db_password"
    assert "its value was not read" in secrets[0]["message"]
    php = {"secrets": [{"file": "/etc/mediawiki/LocalSettings.php", "line": n, "key": None}
                       for n in (60, 61)]}
    names = [p["proposed"] for p in gaps.secret_proposals("wjw-wiki", {"wiki1": php})]
    assert len(set(names)) == 2, names  # two secrets never share a name


def test_a_two_host_draft_opens_the_database_to_the_web_host(estate: Path,
                                                              tmp_path: Path) -> None:
    web = copy.deepcopy(OBSERVED)
    web["postgresql"] = None
    web["address_mentions"] = [{"file": "/etc/wiki/wiki.conf", "line": 3,
                                "text": "db_host = 192.168.178.11"}]
    db = {"hardware": {"hostname": "db1", "cpus": 4, "mem_kb": 8 * 1024 * 1024},
          "listening": [e for e in OBSERVED["listening"] if e["port"] in (22, 5432)],
          "postgresql": OBSERVED["postgresql"], "data_directories": []}
    loaded = open_estate(estate)
    draft = build_draft(loaded, "dsj-wiki", [DraftHost("wiki1", "192.168.178.10", web),
                                             DraftHost("db1", "192.168.178.11", db)], "root")
    path = tmp_path / "two.yaml"
    path.write_text(render(draft, []))
    assert validate_draft(loaded, path, str(path)) == []
    manifest = SystemManifest.model_validate(yaml.safe_load(path.read_text()), strict=False)
    assert [(h.name, h.roles) for h in manifest.source.hosts] == [("wiki1", ["web"]),
                                                                  ("db1", ["db"])]
    assert {(f.from_, f.to, f.port) for f in manifest.target.flows} == {
        ("exchange", "wiki1", 80), ("exchange", "wiki1", 8080), ("wiki1", "db1", 5432)}
    assert {d.host for d in manifest.workload.databases} == {"db1"}
    # the web host's settings name the database host: rewritten to the db instance's address
    rewrites = gaps.rewrite_proposals({"192.168.178.10": "wiki1", "192.168.178.11": "db1"},
                                      {"wiki1": web, "db1": db})
    assert [(r["host"], r["old"], r["new"]) for r in rewrites] == [
        ("wiki1", "192.168.178.11", "${db1}")]


def test_addresses_are_found_as_whole_addresses_only() -> None:
    known = {"192.168.1.1": "a", "192.168.1.10": "b"}
    assert gaps.addresses_in("host=192.168.1.10:5432", known) == ["192.168.1.10"]
    assert gaps.addresses_in("gw 192.168.1.1, db 192.168.1.10", known) == ["192.168.1.1",
                                                                          "192.168.1.10"]
    assert gaps.addresses_in("net 192.168.1.100/24", known) == []


def test_packages_every_debian_system_has_are_not_proposed() -> None:
    observed = {**OBSERVED, "packages": [
        {"name": "dash", "version": "0.5.12-2", "arch": "amd64", "base_system": True},
        {"name": "tomcat10", "version": "10.1.34-0", "arch": "all", "base_system": False}],
        "package_owners": {"/bin/sh": ["dash"], "/usr/libexec/tomcat10/tomcat-start.sh":
                           ["tomcat10"]}}
    assert packages_of(observed) == ["tomcat10"]


def test_the_draft_carries_packages_configuration_and_rewrites(estate: Path,
                                                              tmp_path: Path) -> None:
    observed = {**OBSERVED, "package_owners": {
        "/lib/systemd/system/nginx.service": ["nginx-common"],
        "/usr/sbin/nginx": ["nginx-light"], "/var/lib/mediawiki": ["mediawiki"]}}
    rewrites = gaps.rewrite_proposals({"192.168.178.10": "wiki1"}, {"wiki1": observed})
    rewrites.append({**rewrites[0], "file": "/etc/hosts", "kind": "network"})
    loaded = open_estate(estate)
    draft = build_draft(loaded, "dsj-wiki", [DraftHost("wiki1", "192.168.178.10", observed)],
                        "root", today=date(2026, 11, 20), rewrites=rewrites)
    path = tmp_path / "dsj-wiki.draft.yaml"
    path.write_text(render(draft, ["Draft", ""]))
    assert validate_draft(loaded, path, str(path)) == []
    manifest = SystemManifest.model_validate(yaml.safe_load(path.read_text()), strict=False)
    assert manifest.target.instances[0].packages == ["mediawiki", "nginx-common",
                                                     "nginx-light"]
    assert [(c.host, c.path) for c in manifest.workload.configuration] == [
        ("wiki1", "/etc/wiki/wiki.conf")]  # the host's own /etc/hosts is not the app's
    assert [(r.file, r.old, r.new) for r in manifest.workload.rewrites] == [
        ("/etc/wiki/wiki.conf", "192.168.178.10", "${wiki1}")]


def test_dpkg_search_names_the_owners_of_each_path() -> None:
    from migrate.stages.discovery.parsers import parse_dpkg_search

    text = ("diversion by dash from: /bin/sh\n"
            "nginx-core, nginx-light: /usr/sbin/nginx\n"
            "mediawiki: /var/lib/mediawiki\n"
            "libc6:amd64: /lib/x86_64-linux-gnu/libc.so.6\n")
    assert parse_dpkg_search(text) == {"/usr/sbin/nginx": ["nginx-core", "nginx-light"],
                                       "/var/lib/mediawiki": ["mediawiki"],
                                       "/lib/x86_64-linux-gnu/libc.so.6": ["libc6"]}


WRITTEN = [{"table": "app.sessions", "writes": 12}, {"table": "mediawiki.objectcache",
                                                     "writes": 3},
           {"table": 'app.Big "Cache"', "writes": 1}]


def _watched(written: list[dict]) -> dict:
    observed = copy.deepcopy(OBSERVED)
    wikidb = observed["postgresql"]["databases"][1]
    wikidb.update(watched_s=10, written_while_watched=written)
    return observed


def test_the_draft_proposes_the_tables_written_while_watched(estate: Path,
                                                            tmp_path: Path) -> None:
    loaded = open_estate(estate)
    draft = build_draft(loaded, "dsj-wiki", [DraftHost("wiki1", "192.168.178.10",
                                                       _watched(WRITTEN))], "root")
    path = tmp_path / "dsj-wiki.draft.yaml"
    path.write_text(render(draft, ["Draft", ""]))
    assert validate_draft(loaded, path, str(path)) == []
    wikidb = yaml.safe_load(path.read_text())["workload"]["databases"][0]
    assert wikidb["volatile_tables"] == []  # proposed in a comment: users' tables stay compared
    line = next(t for t in path.read_text().splitlines() if "volatile_tables" in t)
    assert line.endswith('volatile_tables: []  # proposal: written during a 10 s watch while '
                         'the application served: ["app.sessions", "mediawiki.objectcache"]; '
                         "copy here those it writes to answer reads (caches, sessions), not "
                         "those its users write; written too, but not plain names "
                         'volatile_tables can hold: "app.Big \\"Cache\\""')
    quiet = build_draft(loaded, "dsj-wiki", [DraftHost("wiki1", "192.168.178.10",
                                                       _watched([]))], "root")
    assert "no table written during a 10 s watch" in render(quiet, ["Draft", ""])


def test_gaps_name_written_tables_left_out_of_volatile_tables(estate: Path,
                                                             tmp_path: Path) -> None:
    data = _declared(estate, tmp_path).model_dump()
    data["workload"]["databases"][0]["volatile_tables"] = ["objectcache", "app.sessions"]
    system = SystemManifest.model_validate(data, strict=False)
    found = gaps.manifest_gaps(system, {"wiki1": _watched(WRITTEN)})
    [written] = [f for f in found if f["kind"] == "written_while_serving"]
    assert written["tables"] == ["mediawiki.objectcache", 'app.Big "Cache"']
    assert written["message"].startswith('database wikidb: "mediawiki.objectcache", '
                                         '"app.Big \\"Cache\\"" written during a 10 s watch')
