"""The department wiki (tests/foreign/server.py: MediaWiki from Debian's packages on
PostgreSQL, a server the sandbox did not make) moved into the sandbox cloud with
``migrate run``, driven only by its manifest: the packages installed on the target from the
cloud's mirror, the admin's configuration copied, LocalSettings.php rewritten for the new
addresses, the wiki's own role moved with its password verifier before the restore.

Before the move, a changed source host key stops ``migrate run`` before anything changes.
After it, the page answers on the target's planned address with the source's text and
marker, the database is owned by the wiki's role, and a second run changes nothing.
Teardown rolls the source back (its services as they were), destroys the targets and takes
the sandbox down, also when a check fails.

The system has an ``exchange:`` section because every migrating system must (the plan
refuses one without): ``migrate run`` brings the platform up with the sandbox, registers
the wiki's endpoint, and verification checks the connection from the target (no catalogue
resources: the wiki shares none).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from migrate.orchestrate import pipeline
from migrate.rehearsal.sandbox import hostkeys
from migrate.rehearsal.sandbox.estate import operator_key_path
from migrate.stages import trust
from tests.foreign import world
from tests.foreign.estate import SYSTEM, require_engine, taken_down_after, write_wiki_estate
from tests.foreign.server import ForeignServer
from tests.run.events import journal

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

SETTINGS = "/etc/mediawiki/LocalSettings.php"
CHANGING_STAGES = {"sandbox_up", "provision", "transfer", "check_prerequisites", "cutover",
                   "register"}


# What the wiki shares on the platform: its notices, as their wikitext (action=raw: the same
# bytes wherever the wiki runs, so verification compares the target's answer to the source's).
RESOURCE = """  resources:
    - code: 3/140/009/0001
      name: 卫健委工作通知
      summary: 委内制度文件、办事指南和工作通知的页面原文
      format: service_api
      share_type: conditional
      share_condition: 仅限政务部门办理相关业务时查阅
      open_type: none
      update_cycle: monthly
      interface: {service: wiki-web,
                  path: "/index.php?title=%E9%83%A8%E9%97%A8%E9%80%9A%E7%9F%A5&action=raw"}
      items:
        - {name: 页面原文, type: text}
"""


def manifest_for_the_cloud(estate: Path, address: str) -> None:
    """The estate as the department's engineer completes it for the move: the enabled sites
    as a folder (made the same as the source's: the package's default site goes, as the admin
    removed it), and the target's PostgreSQL answers on loopback only (no flow opens 5432),
    so the wiki's database server becomes localhost before the remaining mentions of the old
    address become the target's. The wiki shares its notices on the platform (one catalogue
    resource: registration links it, verification makes a round trip through it). MediaWiki
    writes its caches (parser, localisation, ResourceLoader) and job queue while it answers
    even a read, so those tables are volatile: moved, but not compared once the target
    serves."""
    path = estate / "systems" / f"{SYSTEM}.yaml"
    text = path.read_text(encoding="utf-8")
    enabled = "{host: wiki01, path: /etc/nginx/sites-enabled/wiki}"
    assert enabled in text
    text = text.replace(enabled, "{host: wiki01, path: /etc/nginx/sites-enabled/}")
    password = "password: secret://db-wikidb}"
    assert password in text
    text = text.replace(password, "password: secret://db-wikidb,\n"
                        "       volatile_tables: [mediawiki.objectcache, mediawiki.l10n_cache,"
                        " mediawiki.module_deps, mediawiki.job]}")
    secret = f"  app_secret: secret://exchange-{SYSTEM}\n"
    assert secret in text
    text = text.replace(secret, secret + RESOURCE)
    lines = text.splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.startswith("  rewrites:")) + 1
    lines.insert(at, f"    - {{host: wiki01, file: {SETTINGS},\n"
                     f"       old: '$wgDBserver = \"{address}\";',\n"
                     f"       new: '$wgDBserver = \"localhost\";'}}\n")
    path.write_text("".join(lines), encoding="utf-8")


@pytest.fixture
def wiki_estate(foreign_server: ForeignServer, tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch) -> Path:
    require_engine()
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("MIGRATE_SANDBOX_ROOT", str(tmp_path / "sandbox-root"))
    estate = write_wiki_estate(
        tmp_path / "estate", address=foreign_server.address,
        ssh_key=foreign_server.access.key,
        db_password=foreign_server.db_password_file.read_text().strip())
    manifest_for_the_cloud(estate, foreign_server.address)
    return estate


@pytest.fixture
def moving(wiki_estate: Path, foreign_server: ForeignServer, run_cli) -> Iterator[Path]:
    with taken_down_after(wiki_estate, SYSTEM, run_cli) as estate:
        yield estate


def digest(text: str) -> str:
    return hashlib.sha256(text.strip().encode()).hexdigest()


def raw_page(base: str, title: str) -> str:
    """The page's wikitext (action=raw), the same bytes wherever the wiki runs."""
    url = f"{base}/index.php?title={urllib.parse.quote(title)}&action=raw"
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.read().decode()


def rendered_page(base: str, title: str) -> str:
    with urllib.request.urlopen(f"{base}/index.php?title={urllib.parse.quote(title)}",
                                timeout=10) as answer:
        assert answer.status == 200
        return answer.read().decode()


class Target:
    """ssh to the wiki's target as the sandbox's operator, its provisioned host key checked."""

    def __init__(self, estate: Path, folder: Path) -> None:
        loaded = pipeline.open_estate(estate)
        (found,) = pipeline.provisioned_targets(pipeline.context_of(loaded), SYSTEM).values()
        self.address = found["address"]
        self.known_hosts = folder / "target_known_hosts"
        self.known_hosts.write_text(f"{self.address} {found['host_key']}\n")
        self.key = operator_key_path(loaded)

    def run(self, command: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            ["ssh", "-F", "/dev/null", "-i", str(self.key), "-o", "IdentitiesOnly=yes",
             "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
             "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "ConnectTimeout=10",
             f"root@{self.address}", command],
            capture_output=True, text=True, timeout=60, check=False, input=stdin or "")
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()


VERIFIER = "runuser -u postgres -- psql -XAt -d postgres -c " \
           "\"SELECT rolpassword FROM pg_authid WHERE rolname = 'wikiuser'\""
OWNER = "runuser -u postgres -- psql -XAt -d postgres -c " \
        "\"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'wikidb'\""
# As the wiki logs in (LocalSettings.php: wikiuser over TCP to localhost), password on stdin.
AS_THE_WIKI = ("read -r PGPASSWORD && export PGPASSWORD && psql -XAt -h localhost -U wikiuser"
               " -d wikidb -c 'SELECT current_user, count(*) FROM mediawiki.page'")


def changed_host_key(server: ForeignServer, folder: Path) -> world.Access:
    """Give the source a new host key (the old one kept aside); ssh access with the new one."""
    server.ssh("rm -rf /root/migrate-test-keys && mkdir -m 0700 /root/migrate-test-keys"
               " && cp -a /etc/ssh/ssh_host_* /root/migrate-test-keys/"
               " && rm -f /etc/ssh/ssh_host_* && ssh-keygen -A -q && systemctl restart ssh")
    known = folder / "changed_known_hosts"
    known.write_text(hostkeys.known_hosts_line(server.name, server.address, server.root) + "\n")
    return world.Access(server.access.key, known)


def restore_host_key(server: ForeignServer, changed: world.Access) -> None:
    changed.check(server.address, "rm -f /etc/ssh/ssh_host_* && cp -a /root/migrate-test-keys/."
                  " /etc/ssh/ && rm -rf /root/migrate-test-keys && systemctl restart ssh")


def test_the_wiki_moves_into_the_sandbox_cloud_with_migrate_run(
        moving: Path, foreign_server: ForeignServer, run_cli, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    estate, server = moving, foreign_server
    line = hostkeys.known_hosts_line(server.name, server.address, server.root)
    fingerprint = trust.fingerprint_of(line.split()[2])
    recorded = run_cli("trust", estate, "--accept", fingerprint)
    assert recorded.code == 0, recorded.stdout + recorded.stderr
    source_text = raw_page(server.url("").rstrip("/"), server.page)
    assert server.marker in source_text

    # A changed source host key stops the run before anything changes.
    changed = changed_host_key(server, tmp_path)
    try:
        refused = run_cli("run", estate, "--yes", "--output", "json")
    finally:
        restore_host_key(server, changed)
    assert refused.code == 2, refused.stdout + refused.stderr
    assert "CHANGED" in refused.stdout
    assert not [e for e in journal(estate) if e["stage"] in CHANGING_STAGES]

    # The move.
    started = time.monotonic()
    first = run_cli("run", estate, "--yes", "--output", "json")
    took = time.monotonic() - started
    assert first.code == 0, first.stdout + first.stderr
    summary = json.loads(first.stdout)
    with capsys.disabled():  # the move's time, for the record
        print(f"\nmigrate run of the wiki: {took:.1f} s; per stage: "
              f"{ {k: v['seconds'] for k, v in summary['stage_seconds'].items()} }")
    target = Target(estate, tmp_path)
    base = f"http://{target.address}"
    assert raw_page(base, server.page) == source_text
    page = rendered_page(base, server.page)
    assert server.marker in page
    assert target.run(OWNER) == "wikiuser"
    password = server.db_password_file.read_text().strip()
    assert target.run(AS_THE_WIKI, stdin=password + "\n").startswith("wikiuser|")
    # The verifier kept, never re-set (compared by digest: not even it is printed).
    assert digest(target.run(VERIFIER)) == digest(server.ssh(VERIFIER))
    settings = target.run(f"grep -E '^\\$wg(DBserver|DBuser|Server) ' {SETTINGS}")
    assert server.address not in settings and target.address in settings
    assert '$wgDBserver = "localhost";' in settings and '$wgDBuser = "wikiuser";' in settings
    assert target.run(f"stat -c %U:%G:%a {SETTINGS}") == \
        server.ssh(f"stat -c %U:%G:%a {SETTINGS}").strip()

    # Nothing left to do: a second run changes nothing.
    second = run_cli("run", estate, "--yes", "--output", "json")
    assert second.code == 0, second.stdout + second.stderr
    assert json.loads(second.stdout)["changed_nothing"]
    assert raw_page(base, server.page) == source_text

