"""The estate that moves the department wiki (tests/foreign/server.py) into the sandbox
cloud: ``migrate.yaml`` and one manifest, written the way the department's ops engineer
would, with the ssh key, the database password and the platform secret in ``secrets/``.

Its own address space (cloud 10.177.0.0/17, platform 10.177.200.0/24, ops 10.177.201.0/24)
overlaps nothing else of the project; the source host 192.168.177.10 sits on the foreign
tests' bridge, which ``sandbox.allowed_networks`` names (``seed_legacy: false``: the
sandbox makes no legacy machine for it).
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import pytest

from tests.foreign import world

SYSTEM = "wjw-wiki"
SOURCE_NETWORK = "192.168.177.0/25"

# The settings a discovery test starts from: an estate named TITLE with no manifest yet.
DISCOVERY_YAML = """schema_version: 1
estate: {title}
cloud:
  target: sandbox
  protection_level: 3
  zones:
    egov_extranet: {{cidr: 10.177.0.0/16}}
  images: {{debian-12: debian-12-hardened}}
  flavors:
    - {{name: c2m4, vcpu: 2, memory_gb: 4}}
exchange:
  url: https://exchange.example.gov.cn
  ca_bundle: certs/exchange-ca.pem
sandbox:
  seed_legacy: false
  allowed_networks: [192.168.177.0/25]
sources:
  known_hosts: known_hosts
"""


def discovery_settings(title: str) -> str:
    """migrate.yaml of an estate that discovery is about to draft the first system of."""
    return DISCOVERY_YAML.format(title=title)


MIGRATE_YAML = """schema_version: 1
estate: 市卫生健康委员会知识库迁移上云
cloud:
  target: sandbox
  protection_level: 3
  zones:
    egov_extranet: {{cidr: 10.177.0.0/17}}
  ops_network: 10.177.201.0/24
  images: {{debian-12: debian-12-hardened}}
  flavors:
    - {{name: c2m4, vcpu: 2, memory_gb: 4}}
    - {{name: c4m8, vcpu: 4, memory_gb: 8}}
exchange:
  url: https://exchange.example.gov.cn
  ca_bundle: certs/exchange-ca.pem
  network: 10.177.200.0/24
secrets:
  dir: secrets
sandbox:
  seed_legacy: false
  allowed_networks: [{source_network}]
sources:
  known_hosts: known_hosts
census:
  as_of: {today}
"""

MANIFEST = """schema_version: 1
id: {system}
name: 卫健委知识库
department: {{code: wjw, name: 市卫生健康委员会}}
function: 委内制度文件、办事指南和工作通知的知识库（MediaWiki）
classification: non_classified
protection_level: 2
census:
  usage_scope: department
  usage_frequency:
    monthly_active_users: 40
    last_used: {today}
  approval: {{department: 市卫生健康委员会, date: 2019-03-01, document: 示卫信〔2019〕7号}}
  funding: fiscal
  network: egov_extranet
  maintenance: {{vendor: 委信息中心, last_update: 2026-06-01, active: true}}
source:
  ssh: {{user: root, key: secret://ssh-{system}}}
  hosts:
    - {{name: wiki01, address: {address}, roles: [web, db]}}
workload:
  services:
    - {{name: wiki-web, host: wiki01, unit: nginx.service, port: 80,
       health: "/index.php?title=%E9%83%A8%E9%97%A8%E9%80%9A%E7%9F%A5"}}
  files:
    - {{host: wiki01, path: /var/lib/mediawiki/images, size_gb: 0.01, daily_change_gb: 0.001}}
  databases:
    - {{host: wiki01, engine: postgresql, name: wikidb, size_gb: 0.02, user: wikiuser,
       password: secret://db-wikidb}}
  configuration:                  # what the admin set up by hand
    - {{host: wiki01, path: /etc/mediawiki/}}
    - {{host: wiki01, path: /etc/nginx/sites-available/wiki}}
    - {{host: wiki01, path: /etc/nginx/sites-enabled/wiki}}
  rewrites:                       # the wiki names its server's address for the database
    - {{host: wiki01, file: /etc/mediawiki/LocalSettings.php, old: "{address}",
       new: "${{wiki}}"}}
target:
  zone: egov_extranet
  instances:
    - {{name: wiki, replaces: [wiki01], vcpu: 2, memory_gb: 4, disk_gb: 40, image: debian-12,
       packages: [mediawiki, php-pgsql, php8.2-fpm]}}
  flows:
    - {{from: ops, to: wiki, port: 80}}
    - {{from: exchange, to: wiki, port: 80}}
exchange:
  app_key: {system}
  app_secret: secret://exchange-{system}
cutover:
  max_downtime_minutes: 30
"""


def write_wiki_estate(folder: Path, *, address: str, ssh_key: Path, db_password: str,
                      known_hosts: str = "", today: date | None = None) -> Path:
    """The estate folder (made fresh); ``known_hosts`` holds the recorded source host keys."""
    day = (today or date.today()).isoformat()
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "systems").mkdir(parents=True)
    (folder / "migrate.yaml").write_text(
        MIGRATE_YAML.format(source_network=SOURCE_NETWORK, today=day), encoding="utf-8")
    (folder / "systems" / f"{SYSTEM}.yaml").write_text(
        MANIFEST.format(system=SYSTEM, address=address, today=day), encoding="utf-8")
    if known_hosts:
        (folder / "known_hosts").write_text(known_hosts)
    vault = folder / "secrets"
    vault.mkdir(mode=0o700)
    _secret(vault / f"ssh-{SYSTEM}", ssh_key.read_text())
    _secret(vault / "db-wikidb", db_password + "\n")
    _secret(vault / f"exchange-{SYSTEM}", secrets.token_urlsafe(24) + "\n")
    return folder


def _secret(path: Path, text: str) -> None:
    path.write_text(text)
    os.chmod(path, 0o600)


def require_engine() -> None:
    """Moving needs the built Pulumi engine (a skip, which fails under CI, says how)."""
    from migrate.adapters.engine import find_engine

    if find_engine() is None:
        pytest.skip("the Pulumi engine is not built: run 'make engine'")


MARIADB_SCRIPT = Path(__file__).parents[2] / "playbooks" / "files" / "move_mariadb.sh"


def target_access(estate: Path, system: str, folder: Path) -> tuple[world.Access, str]:
    """ssh to the system's one target as the sandbox's operator, its provisioned host key
    checked (a known_hosts file written into ``folder``), and the target's address."""
    from migrate.orchestrate import pipeline
    from migrate.rehearsal.sandbox.estate import operator_key_path

    loaded = pipeline.open_estate(estate)
    (found,) = pipeline.provisioned_targets(pipeline.context_of(loaded), system).values()
    known = folder / "target_known_hosts"
    known.write_text(f"{found['address']} {found['host_key']}\n")
    return world.Access(operator_key_path(loaded), known), found["address"]


def mariadb_sums(run: Callable[[str, str], str], database: str) -> dict[str, str]:
    """Per-table ``rows checksum`` of a MariaDB database, by the playbooks' own script
    (``run(command, stdin)`` on the host that holds it)."""
    text = run(f"bash -s sums {database}", MARIADB_SCRIPT.read_text())
    return dict(line.split(" ", 1) for line in text.splitlines())


@contextmanager
def taken_down_after(estate: Path, system: str, run_cli: Callable) -> Iterator[Path]:
    """The estate; afterwards the source is given its service back when a cutover may have
    stopped it (not once decommissioned: the move is final), the targets destroyed, the
    sandbox taken down and its mirror's cache removed (by the mirror's own name). Every step
    runs; then one that failed fails the teardown, named with its output."""
    from migrate.orchestrate import pipeline
    from migrate.rehearsal.sandbox import mirror
    from migrate.rehearsal.sandbox.estate import existing_estate_id
    from migrate.rehearsal.sandbox.estate_record import read_record

    failed: list[str] = []
    try:
        yield estate
    finally:
        estate_id = existing_estate_id(pipeline.open_estate(estate))
        record = read_record(estate_id) if estate_id else None
        commands: list[tuple[str, ...]] = []
        if (estate / ".migrate" / "plan.json").exists():
            if cutover_to_undo(estate, system):
                commands.append(("rollback", str(estate), "--system", system))
            # the sources go next, whatever the move left on them
            commands.append(("destroy", str(estate), "--yes", "--leave-source-traces"))
        commands.append(("sandbox", "down", str(estate)))
        for command in commands:
            done = run_cli(*command)
            if done.code != 0:
                failed.append(f"migrate {' '.join(command)}: exit {done.code}\n"
                              f"{done.stdout}{done.stderr}")
        if record and record.mirror:
            shutil.rmtree(mirror.mirror_dir(record.mirror), ignore_errors=True)
    assert failed == [], "\n".join(failed)  # (when the body raised, its error is the one)


def cutover_to_undo(estate: Path, system: str) -> bool:
    """Whether the journal has a cutover of ``system`` (ended or failed: either may have
    stopped the source) and no decommission of it (after which nothing is left to roll back
    to: the source keeps no cutover record)."""
    from tests.run.events import journal

    mine = [(e["stage"], e.get("result")) for e in journal(estate) if e.get("system") == system]
    return (any(stage == "cutover" and result in ("ok", "failed") for stage, result in mine)
            and ("decommission_source", "ok") not in mine)
