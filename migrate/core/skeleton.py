"""``migrate init FOLDER``: a new estate to start from, commented, that ``migrate validate``
accepts as it is (with warnings for what only the operator can supply: secrets, the CA)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from migrate.core.errors import InvalidInput, Problem

ESTATE_YAML = """\
# The estate: the cloud the systems move to and the platforms they use.
# Every key is described in docs/manifest-reference.md; check with 'migrate validate'.
schema_version: 1
estate: My city's department systems (first batch)   # free text title, shown in reports
cloud:
  target: sandbox                  # sandbox (a local rehearsal) | openstack (the real cloud)
  protection_level: 3              # the cloud's own 等保 level; systems above it are refused
  openstack:
    cloud: egov-cloud              # entry in clouds.yaml on the operator's machine
    external_network: egov-ext
  zones:                           # network zones of the cloud and their address ranges
    egov_extranet: {cidr: 10.20.0.0/16}    # 政务外网区
  ops_network: 10.30.0.0/24                # 运维管理网 (bastion)
  images: {debian-12: debian-12-hardened}  # manifest image name -> cloud image name
  flavors:
    - {name: c2m4, vcpu: 2, memory_gb: 4}
exchange:
  url: https://exchange.example.gov.cn     # the data sharing and exchange platform
  ca_bundle: certs/exchange-ca.pem         # its CA, relative to this folder
  network: 10.40.0.0/24
secrets:
  dir: secrets                     # secret://NAME reads the file secrets/NAME (never commit it)
census:
  as_of: null                      # census day (YYYY-MM-DD); null: today
transfer:
  bandwidth_mbps: 100              # usable bandwidth from the server rooms to the cloud
  incremental_interval_hours: 1
"""

SYSTEM_YAML = """\
# One department system. Copy this file per system (systems/ID.yaml); 'migrate census'
# decides from the census block whether it moves, is merged, decommissioned or refused.
schema_version: 1
id: dept-example                   # department code, a dash, a short name
name: Example department system
department: {code: dept, name: Example department}
function: What the system does, in one sentence
classification: non_classified
protection_level: 2

census:
  usage_scope: department
  usage_frequency:
    monthly_active_users: 100
    last_used: {today}              # a system idle 180 days is decommissioned
  approval: {department: Development and reform commission, date: 2020-01-01,
             document: approval document number}
  funding: fiscal
  network: egov_extranet
  maintenance: {vendor: Example vendor, last_update: {today}, active: true}
  annual_cost_wan: 10

source:                            # the hosts in the department's server room
  ssh: {user: root, key: secret://ssh-dept-example}
  hosts:
    - {name: app1, address: 192.168.100.10, roles: [web, db]}

workload:
  services:
    - {name: example-web, host: app1, unit: example-web.service, port: 8080, health: /health}
  files:
    - {host: app1, path: /srv/example, size_gb: 1, daily_change_gb: 0.1}
  databases:
    - {host: app1, engine: postgresql, name: example, size_gb: 1,
       password: secret://db-dept-example}

target:                            # what it becomes on the cloud
  zone: egov_extranet
  instances:
    - {name: app, replaces: [app1], vcpu: 2, memory_gb: 4, disk_gb: 40, image: debian-12}
  flows:
    - {from: exchange, to: app, port: 8080}

depends_on: []                     # ids of systems that must move first

exchange:                          # its registration on the exchange platform
  app_key: dept-example
  app_secret: secret://exchange-dept-example
  resources: []

cutover:
  max_downtime_minutes: 30
"""

SECRETS_GITIGNORE = """\
# Secrets never go into version control: one file per secret:// name lives here.
*
!.gitignore
"""


def skeleton(today: date) -> dict[str, str]:
    """The files of a new estate, by path relative to its folder; the example system was used
    ``today``, so that the census moves it."""
    system = SYSTEM_YAML.replace("{today}", today.isoformat())
    return {"migrate.yaml": ESTATE_YAML, "systems/dept-example.yaml": system,
            "secrets/.gitignore": SECRETS_GITIGNORE}


def refuse_non_empty(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise InvalidInput([Problem(str(folder), None, "", "exists and is not a folder")],
                           f"{folder} is not a folder")
    if folder.is_dir() and any(folder.iterdir()):
        raise InvalidInput([Problem(str(folder), None, "", "folder is not empty",
                                    "give a new or empty folder; init never overwrites")],
                           f"{folder} is not empty")


def init_estate(folder: Path, today: date | None = None) -> list[Path]:
    """Write the skeleton into ``folder`` (new or empty); the paths written."""
    refuse_non_empty(folder)
    written = []
    for relative, text in skeleton(today or date.today()).items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    (folder / "secrets").chmod(0o700)
    return written
