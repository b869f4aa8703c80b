"""The third-party department server the fixture builds outside ``sandbox up``: MediaWiki
from Debian's packages on PostgreSQL, configured by hand, answering from its database."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import pytest

from migrate.rehearsal.sandbox import hostkeys, mirror
from tests.foreign import server as wiki
from tests.foreign.server import ForeignServer

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

# nginx's combined format: client - user [time] "request" status bytes "referer" "agent"
ACCESS_LINE = re.compile(r'^(\S+) \S+ \S+ \[([^\]]+)\] "(\S+) (\S+) [^"]*" (\d{3}) ')


def test_the_wiki_answers_with_a_page_from_its_database(foreign_server: ForeignServer):
    print(f"\nforeign server ready in {foreign_server.setup_s:.1f} s"
          f" ({'prepared overlay' if foreign_server.prepared else 'built from packages'}):"
          f" {foreign_server.phases}")
    status, body = wiki.get(foreign_server.page_url())
    assert status == 200
    assert foreign_server.marker in body
    assert "关于系统迁移上云的通知" in body
    rows = foreign_server.ssh(
        f"runuser -u postgres -- psql -At {foreign_server.database} -c"
        f" \"SELECT count(*) FROM mediawiki.text WHERE old_text LIKE '%{foreign_server.marker}%'\"")
    assert int(rows) >= 1


def test_without_its_database_the_wiki_cannot_serve_the_page(foreign_server: ForeignServer):
    # postgresql.service is a front for the cluster's unit; stop both, or systemctl returns
    # while the cluster is still shutting down
    foreign_server.ssh("systemctl stop postgresql@15-main postgresql")
    try:
        status, body = wiki.get(foreign_server.page_url())
        # "无法访问数据库" (cannot access the database) or a fatal exception, by timing
        assert status == 500, body[:500]
        assert foreign_server.marker not in body
    finally:
        foreign_server.ssh("systemctl start postgresql")
    wiki.wait_answering(foreign_server.address)


def test_the_wiki_logs_in_as_its_own_role_on_the_servers_address(
        foreign_server: ForeignServer):
    password = foreign_server.db_password_file.read_text().strip()
    assert foreign_server.db_password_file.stat().st_mode & 0o777 == 0o600
    who = foreign_server.ssh(
        f"read -r PGPASSWORD; export PGPASSWORD; psql -At 'host={foreign_server.address}"
        f" dbname={foreign_server.database} user={foreign_server.role}' -c"
        " 'SELECT current_user, inet_server_addr()'", stdin=password + "\n")
    assert who.strip() == f"{foreign_server.role}|{foreign_server.address}"
    wrong = foreign_server.access.run(
        foreign_server.address,
        f"PGPASSWORD=wrong psql -At 'host={foreign_server.address}"
        f" dbname={foreign_server.database} user={foreign_server.role}' -c 'SELECT 1'")
    assert wrong.returncode != 0 and "password authentication failed" in wrong.stderr
    owner = foreign_server.ssh(
        f"runuser -u postgres -- psql -At -c \"SELECT pg_get_userbyid(datdba) FROM pg_database"
        f" WHERE datname = '{foreign_server.database}'\"")
    assert owner.strip() == foreign_server.role


def test_its_settings_name_the_servers_own_address(foreign_server: ForeignServer):
    settings = foreign_server.ssh(f"cat {foreign_server.config}")
    assert f'$wgDBserver = "{foreign_server.address}";' in settings
    assert f'$wgServer = "http://{foreign_server.address}";' in settings
    assert f'$wgDBuser = "{foreign_server.role}";' in settings
    assert f'$wgDBname = "{foreign_server.database}";' in settings
    assert foreign_server.ssh(f"stat -c '%U:%G %a' {foreign_server.config}").strip() == (
        "root:www-data 640")
    listen = foreign_server.ssh("runuser -u postgres -- psql -At -c 'SHOW listen_addresses'")
    assert listen.strip() == f"localhost,{foreign_server.address}"


def test_uploads_live_in_its_data_directory_and_are_served(foreign_server: ForeignServer):
    path = f"{foreign_server.data_dir}/8/8e/{wiki.IMAGE_FILE}"
    on_disk = foreign_server.ssh(f"sha256sum {path}").split()[0]
    served = subprocess.run(["curl", "-sf", foreign_server.url(f"/images/8/8e/{wiki.IMAGE_FILE}")],
                            capture_output=True, check=True, timeout=10).stdout
    assert hashlib.sha256(served).hexdigest() == on_disk
    assert served.startswith(b"\x89PNG")


def test_its_access_log_has_requests(foreign_server: ForeignServer):
    wiki.visit(foreign_server.address)
    lines = foreign_server.ssh(f"cat {foreign_server.access_log}").splitlines()
    parsed = [ACCESS_LINE.match(line) for line in lines]
    assert all(parsed), [line for line, match in zip(lines, parsed, strict=True) if not match]
    requests = [match.groups() for match in parsed if match]
    assert len(requests) >= 6
    clients = {client for client, *_ in requests}
    assert "192.168.177.1" in clients  # the host, across the bridge
    statuses = {status for *_, status in requests}
    assert {"200", "404"} <= statuses
    assert any("title=%E9%83%A8%E9%97%A8%E9%80%9A%E7%9F%A5" in path
               for _, _, _, path, _ in requests)


def test_its_rotated_access_logs_show_the_departments_use(foreign_server: ForeignServer):
    log = foreign_server.access_log
    lines = foreign_server.ssh(f"zcat -f {log}.2.gz {log}.1").splitlines()
    requests = [ACCESS_LINE.match(line) for line in lines]
    assert len(lines) > 1000 and all(requests)
    by_month: dict[str, set[str]] = {}
    for match in requests:
        assert match is not None
        client, when = match.group(1), match.group(2)
        by_month.setdefault(when[3:11], set()).add(client)
    # three months with most of the 40 office PCs in each; the month the history starts or
    # ends in may hold a day or two only (on 2 December, 1 December alone)
    busy = [month for month, clients in by_month.items() if len(clients) >= 30]
    assert len(busy) >= 3, {month: len(clients) for month, clients in by_month.items()}
    assert foreign_server.ssh(f"stat -c '%U:%G %a' {log}.1").strip() == "www-data:adm 640"


def test_it_runs_debians_mediawiki_installed_through_the_mirror(
        foreign_server: ForeignServer, foreign_mirror: mirror.Mirror):
    version = foreign_server.ssh("dpkg-query -W -f '${Version} ${Status}' mediawiki")
    assert re.match(r"^1:1\.39\.\S+ install ok installed$", version), version
    policy = foreign_server.ssh("apt-cache policy mediawiki")
    assert f"{foreign_mirror.url} bookworm/main" in policy
    units = foreign_server.ssh("systemctl is-enabled postgresql nginx php8.2-fpm").split()
    assert units == ["enabled"] * 3
    assert foreign_server.ssh("hostname").strip() == foreign_server.hostname


def test_ssh_to_it_checks_its_real_host_key(foreign_server: ForeignServer, tmp_path: Path):
    recorded = foreign_server.access.known_hosts.read_text()
    real = hostkeys.known_hosts_line(foreign_server.name, foreign_server.address,
                                     foreign_server.root)
    assert real in recorded.splitlines()
    scanned = foreign_server.ssh("cat /etc/ssh/ssh_host_ed25519_key.pub").split()[:2]
    assert real.split()[1:] == scanned

    other_key, _ = hostkeys.ensure_client_keypair(tmp_path / "not-the-host-key")
    impostor = other_key.with_name(other_key.name + ".pub").read_text().split()[:2]
    wrong = hostkeys.write_known_hosts(tmp_path / "known_hosts",
                                       [f"{foreign_server.address} {' '.join(impostor)}"])
    access = type(foreign_server.access)(foreign_server.access.key, wrong)
    refused = access.run(foreign_server.address, "true", timeout=30)
    assert refused.returncode == 255
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in refused.stderr
