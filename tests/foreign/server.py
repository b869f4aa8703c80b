"""A department server nobody here wrote: 卫健委知识库, a MediaWiki on PostgreSQL.

Built from Debian bookworm's own packages (mediawiki 1.39, php8.2-fpm, php-pgsql, with the
image's PostgreSQL 15 and nginx), installed through the package mirror, and configured the
way its administrator once did by hand: a database role ``wikiuser`` with a password, the
database ``wikidb`` it owns, PostgreSQL listening on the server's own address, which
LocalSettings.php names as the database host (and as ``$wgServer``), an nginx site with its
own access log, uploads in /var/lib/mediawiki/images, a notice page and a seal image. Its
access logs also hold three months of use by the department's staff (rotated logs, written
each session relative to its date), so discovery sees a system in use.

Building takes about a minute, so the finished overlay is kept under
/var/cache/migrate/foreign/ with the passwords it was built with, and every session boots
the server from it (tests/foreign/builder.py: the same for every foreign server).
"""

from __future__ import annotations

import random
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from migrate.rehearsal.sandbox import mirror
from tests.foreign import builder, world
from tests.foreign.builder import get

RECIPE_VERSION = 1  # kept under /var/cache/migrate/foreign/ (RECIPE.name)
NAME = "t-wiki"  # the machine (veth vb-t-wiki)
HOSTNAME = "wiki01"
HOST = 10  # 192.168.177.10
PACKAGES = ("mediawiki", "php-pgsql", "php8.2-fpm")
DATABASE, ROLE = "wikidb", "wikiuser"
ADMIN = "WikiAdmin"
SITE_NAME = "卫健委知识库"
PAGE = "部门通知"
MARKER = "wjw-wiki-7f3a91"
CONFIG = "/etc/mediawiki/LocalSettings.php"
DATA_DIR = "/var/lib/mediawiki/images"
ACCESS_LOG = "/var/log/nginx/wiki.access.log"
IMAGE_FILE = "Seal.png"
READY_TIMEOUT = 90.0
HISTORY_MONTHS = 3  # whole months of use in the rotated logs


@dataclass(frozen=True)
class ForeignServer(builder.KeptServer):  # at 192.168.177.10
    hostname: str
    db_password_file: Path  # on the host, 0600: the role's password, as an estate keeps it
    database: str = DATABASE
    role: str = ROLE
    page: str = PAGE
    marker: str = MARKER
    config: str = CONFIG
    data_dir: str = DATA_DIR
    access_log: str = ACCESS_LOG

    def url(self, path: str = "/") -> str:
        return f"http://{self.address}{path}"

    def page_url(self, title: str | None = None) -> str:
        return self.url("/index.php?title=" + urllib.parse.quote(title or self.page))


# ---- the recipe ------------------------------------------------------------------------


def setup_script(address: str) -> str:
    """What the department's admin did, as one shell script run as root on the server.

    The passwords are in /root/setup (sent over ssh's stdin), removed at the end."""
    return f"""set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
IP={address}
PG=/etc/postgresql/15/main
apt-get update -q
apt-get install -y -q --no-install-recommends {' '.join(PACKAGES)}

# PostgreSQL: the wiki's own role and database, reachable on the server's address
systemctl enable --now postgresql
sed -i "s/^#\\?listen_addresses *=.*/listen_addresses = 'localhost,$IP'/" $PG/postgresql.conf
echo "host    {DATABASE}    {ROLE}    $IP/32    scram-sha-256" >> $PG/pg_hba.conf
systemctl restart postgresql
runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 -v pass="$(cat /root/setup/dbpass)" <<'SQL'
CREATE ROLE {ROLE} LOGIN PASSWORD :'pass';
CREATE DATABASE {DATABASE} OWNER {ROLE} ENCODING 'UTF8' TEMPLATE template0;
SQL

# MediaWiki, installed with its own installer; LocalSettings.php names $IP for the database
cd /var/lib/mediawiki
php maintenance/install.php --dbtype=postgres --dbserver=$IP --dbport=5432 \\
  --dbname={DATABASE} --dbuser={ROLE} --dbpassfile=/root/setup/dbpass \\
  --passfile=/root/setup/adminpass --server=http://$IP --scriptpath= --lang=zh-hans \\
  --confpath=/etc/mediawiki "{SITE_NAME}" {ADMIN}
sed -i 's/^\\$wgEnableUploads = false;/$wgEnableUploads = true;/' {CONFIG}
chown root:www-data {CONFIG}
chmod 640 {CONFIG}

# nginx in front of php-fpm, with the site's own access log
cat > /etc/nginx/sites-available/wiki <<NGINX
# {SITE_NAME} (MediaWiki)
server {{
    listen 80 default_server;
    server_name $IP {HOSTNAME};
    root /var/lib/mediawiki;
    index index.php;
    access_log {ACCESS_LOG};
    error_log /var/log/nginx/wiki.error.log;
    client_max_body_size 20m;

    location / {{
        try_files \\$uri \\$uri/ @wiki;
    }}
    location @wiki {{
        rewrite ^/(.*)\\$ /index.php?title=\\$1&\\$args last;
    }}
    location ~ ^/(cache|config|includes|languages|maintenance|mw-config|vendor)/ {{
        deny all;
    }}
    location ^~ /images/ {{
        try_files \\$uri =404;
    }}
    location ~ \\.php\\$ {{
        include snippets/fastcgi-php.conf;
        fastcgi_pass unix:/run/php/php8.2-fpm.sock;
    }}
}}
NGINX
rm -f /etc/nginx/sites-enabled/default
ln -sf ../sites-available/wiki /etc/nginx/sites-enabled/wiki
nginx -t -q
systemctl enable --now nginx php8.2-fpm

# Content: a notice page and the department's seal
php maintenance/edit.php --user {ADMIN} --summary "发布通知" {PAGE} <<'TEXT'
== 关于系统迁移上云的通知 ==
本知识库将迁移至市电子政务云。迁移标记：{MARKER}。
TEXT
python3 - <<'PY'
import struct, zlib
def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
rows = b"".join(b"\\x00" + bytes([200, 30, 30] * 16) for _ in range(16))
png = (b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 16, 16, 8, 2, 0, 0, 0))
       + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
open("/root/setup/{IMAGE_FILE}", "wb").write(png)
PY
php maintenance/importImages.php --user={ADMIN} --comment="部门印章" /root/setup png
rm -rf /root/setup
apt-get clean
"""


RECIPE = builder.Recipe(
    name="foreign", version=RECIPE_VERSION, machine=NAME, hostname=HOSTNAME, host=HOST,
    packages=PACKAGES, script=setup_script, answering=lambda address: wait_answering(address),
    secrets=(("dbpass", "db_password"), ("adminpass", "admin_password")),
    in_use=lambda access, address: _in_use(access, address))


# ---- the fixture -----------------------------------------------------------------------


@contextmanager
def department_wiki(net: world.Net, package_mirror: mirror.Mirror, root: Path,
                    access: world.Access) -> Iterator[ForeignServer]:
    """The wiki server, answering, with its history of use; destroyed (by its name)
    afterwards. Built once and kept (tests/foreign/builder.py)."""
    with builder.kept_server(RECIPE, net, package_mirror, root, access) as booted:
        yield ForeignServer(
            **booted.shared(), hostname=HOSTNAME,
            db_password_file=builder.password_file(access.key.parent, DATABASE,
                                                   booted.facts["db_password"]))


def _in_use(access: world.Access, address: str) -> None:
    write_usage_history(access, address, datetime.now(UTC))
    visit(address)


def wait_answering(address: str, timeout: float = READY_TIMEOUT) -> None:
    """Until the notice page comes back with its text (read from the database)."""
    builder.wait_for(f"http://{address}/index.php?title={urllib.parse.quote(PAGE)}",
                     lambda status, body: status == 200 and MARKER in body, timeout,
                     f"the wiki at {address} did not answer with its page")


def history_start(today: datetime, months: int = HISTORY_MONTHS) -> datetime:
    """The first day of the month ``months`` whole months before today's: the history
    holds that many whole months whatever today's date (plus this month's days so far)."""
    start = today.replace(day=1)
    for _ in range(months):
        start = (start - timedelta(days=1)).replace(day=1)
    return start


def usage_history(now: datetime) -> tuple[str, str]:
    """The wiki's use before this session, as nginx logged it: the department's staff (40
    office PCs at 192.168.177.60-99) reading pages on working days. Returns yesterday's
    lines and the older ones (``wiki.access.log.1`` and ``.2.gz``, as logrotate leaves them)."""
    chooser = random.Random(20261201)
    pages = ["首页", PAGE, "办事指南", "值班安排", "Special:Search?search=" + "迁移",
             "Special:RecentChanges"]
    agents = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like"
              " Gecko) Chrome/109.0.0.0 Safari/537.36",
              "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko")
    recent: list[str] = []
    older: list[str] = []
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    for back in range((today - history_start(today)).days, 0, -1):
        day = today - timedelta(days=back)
        if day.weekday() >= 5:
            continue
        for _ in range(chooser.randint(20, 60)):
            at = day + timedelta(hours=chooser.randint(8, 17), minutes=chooser.randint(0, 59),
                                 seconds=chooser.randint(0, 59))
            client = f"192.168.177.{chooser.randint(60, 99)}"
            page = chooser.choice(pages)
            path = "/index.php?title=" + urllib.parse.quote(page, safe="=?:")
            status, size = chooser.choice(((200, 16400), (200, 15872), (304, 0), (404, 9120)))
            line = (f'{client} - - [{at.strftime("%d/%b/%Y:%H:%M:%S +0000")}] "GET {path}'
                    f' HTTP/1.1" {status} {size} "-" "{chooser.choice(agents)}"')
            (recent if back == 1 else older).append(line)
    return log_text(recent), log_text(older)


def log_text(lines: list[str]) -> str:
    """A log file's text: no line at all when nothing was logged (a Monday's yesterday is a
    Sunday), never an empty one."""
    return "".join(f"{line}\n" for line in sorted(lines))


def write_usage_history(access: world.Access, address: str, now: datetime) -> None:
    recent, older = usage_history(now)
    log = ACCESS_LOG
    access.check(address, f"cat > {log}.1 && chown www-data:adm {log}.1 && chmod 640 {log}.1",
                 stdin=recent)
    access.check(address, f"gzip -9 > {log}.2.gz && chown www-data:adm {log}.2.gz &&"
                          f" chmod 640 {log}.2.gz", stdin=older)


def visit_today(address: str) -> date:
    """Readers' requests now, and the UTC day all of them were made on (again, when midnight
    fell amid them): the day a manifest written now declares as last used."""
    while True:
        day = datetime.now(UTC).date()
        visit(address)
        if datetime.now(UTC).date() == day:
            return day


def visit(address: str) -> None:
    """A few readers' requests, so the access log has something to show."""
    for path in ("/", "/index.php?title=" + urllib.parse.quote(PAGE),
                 "/index.php?title=Special:RecentChanges", "/images/8/8e/" + IMAGE_FILE,
                 "/index.php?title=" + urllib.parse.quote("不存在的页面"), "/robots.txt"):
        get(f"http://{address}{path}")

