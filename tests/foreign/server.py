"""A department server nobody here wrote: 卫健委知识库, a MediaWiki on PostgreSQL.

Built from Debian bookworm's own packages (mediawiki 1.39, php8.2-fpm, php-pgsql, with the
image's PostgreSQL 15 and nginx), installed through the package mirror, and configured the
way its administrator once did by hand: a database role ``wikiuser`` with a password, the
database ``wikidb`` it owns, PostgreSQL listening on the server's own address, which
LocalSettings.php names as the database host (and as ``$wgServer``), an nginx site with its
own access log, uploads in /var/lib/mediawiki/images, a notice page and a seal image. Its
access logs also hold three months of use by the department's staff (rotated logs, written
each session relative to its date), so discovery sees a system in use.

Building takes about a minute, so the finished overlay (the machine's upper directory) is
kept under /var/cache/migrate/foreign/<digest of the recipe and the image>/ with the
passwords it was built with (0600); every session boots the server with it as a read-only
layer between the image and an upper dir of its own. The host reaches it with the
session's own ssh key (in authorized_keys) and the machine's real host key (made for it on
every boot, recorded in the session's known_hosts).
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import hashlib
import json
import os
import random
import secrets
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from migrate.rehearsal.sandbox import images, machines, mirror, network
from migrate.rehearsal.sandbox.layout import upper_dir
from tests.foreign import world

RECIPE_VERSION = 1
CACHE = Path("/var/cache/migrate/foreign")
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
class ForeignServer:
    name: str  # sandbox machine name
    hostname: str
    address: str  # 192.168.177.10
    root: Path  # sandbox root the machine lives under
    access: world.Access
    db_password_file: Path  # on the host, 0600: the role's password, as an estate keeps it
    setup_s: float  # from nothing to answering over HTTP
    prepared: bool  # True: booted from the kept overlay (warm), False: built now (cold)
    phases: dict[str, float]  # seconds per step of the setup
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

    def ssh(self, command: str, stdin: str | None = None) -> str:
        return self.access.check(self.address, command, stdin)


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


def recipe_digest(image: Path, address: str, mirror_url: str) -> str:
    recipe = {"version": RECIPE_VERSION, "image": image.name, "address": address,
              "hostname": HOSTNAME, "packages": PACKAGES, "mirror": mirror_url,
              "script": setup_script(address)}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


# ---- the fixture -----------------------------------------------------------------------


@contextmanager
def department_wiki(net: world.Net, package_mirror: mirror.Mirror, root: Path,
                    access: world.Access) -> Iterator[ForeignServer]:
    """The wiki server, answering; destroyed (by its name) afterwards.

    Cold, the machine is built on the bare image, shut down, and its upper dir becomes the
    kept overlay. Either way the server then boots with the kept overlay as a read-only
    layer under an empty upper dir of its own (a new host key, the session's ssh key), so
    nothing is copied and a session never changes what the next one boots."""
    image = images.ensure_image("legacy")
    _, public_key = world.operator_key(access.key.parent)
    bare = world.machine_spec(NAME, net, HOST, str(image), public_key, hostname=HOSTNAME)
    cache = CACHE / recipe_digest(image, bare.ip, package_mirror.url)
    spec = dataclasses.replace(bare, layers=(str(cache / "upper"),))
    clock = _Clock()
    with world.machine(spec, root), _kept_overlay(cache) as lock:
        prepared = (cache / "upper").is_dir()
        if prepared:
            facts = json.loads((cache / "facts.json").read_text())
        else:
            facts = {"db_password": secrets.token_urlsafe(18),
                     "admin_password": secrets.token_urlsafe(18)}
            _boot(bare, root, access, package_mirror.url)
            clock.lap("boot the bare image")
            _build(bare, access, facts)
            wait_answering(bare.ip)
            clock.lap("install and configure")
            _keep(bare, root, cache, facts)
            clock.lap("keep the overlay")
        fcntl.flock(lock, fcntl.LOCK_SH)  # in use: not removed while this machine runs
        _boot(spec, root, access, package_mirror.url)
        clock.lap("boot")
        wait_answering(spec.ip)
        write_usage_history(access, spec.ip, datetime.now(UTC))
        visit(spec.ip)
        clock.lap("answering")
        yield ForeignServer(
            name=NAME, hostname=HOSTNAME, address=spec.ip, root=root, access=access,
            db_password_file=_password_file(access.key.parent, facts["db_password"]),
            setup_s=clock.total(), prepared=prepared, phases=clock.laps)


class _Clock:
    def __init__(self) -> None:
        self.started = self.last = time.monotonic()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.laps[name] = round(now - self.last, 1)
        self.last = now

    def total(self) -> float:
        return time.monotonic() - self.started


def _boot(spec: machines.MachineSpec, root: Path, access: world.Access, url: str) -> None:
    world.boot(spec, root, access.known_hosts, url)
    state = world.settle(access, spec.ip)
    assert state == "running", f"{spec.machine} did not boot cleanly: {state}"


def _build(spec: machines.MachineSpec, access: world.Access, facts: dict[str, str]) -> None:
    for name, key in (("dbpass", "db_password"), ("adminpass", "admin_password")):
        access.check(spec.ip, f"install -d -m 0700 /root/setup && umask 077 &&"
                              f" cat > /root/setup/{name}", stdin=facts[key] + "\n")
    access.check(spec.ip, "bash -s", stdin=setup_script(spec.ip))


def _keep(spec: machines.MachineSpec, root: Path, cache: Path, facts: dict[str, str]) -> None:
    """Shut the built machine down cleanly and keep its upper dir (moved, not copied)."""
    machines.stop_machine(spec.name, root)
    building = cache.with_name(f".{cache.name}.tmp-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True, mode=0o700)
    _move_tree(upper_dir(spec.name, root), building / "upper")
    facts_file = building / "facts.json"
    facts_file.write_text(json.dumps(facts) + "\n")
    os.chmod(facts_file, 0o600)
    os.rename(building, cache)
    _forget_other_recipes(cache)


def _move_tree(source: Path, target: Path) -> None:
    """Move an overlay upper dir exactly: owners, modes, xattrs, whiteouts (device nodes)."""
    try:
        os.rename(source, target)
    except OSError as error:
        if error.errno != errno.EXDEV:
            raise
        subprocess.run(["cp", "-a", str(source), str(target)], check=True)
        shutil.rmtree(source)


def _forget_other_recipes(kept: Path) -> None:
    """Overlays of older recipes (or images) are never used again: remove them, unless
    a session is using one."""
    for other in kept.parent.iterdir():
        if other == kept or other.name.startswith(".") or not other.is_dir():
            continue
        with open(other.with_name(f".{other.name}.lock"), "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            shutil.rmtree(other)
            other.with_name(f".{other.name}.lock").unlink()


@contextmanager
def _kept_overlay(cache: Path) -> Iterator[int]:
    """The kept overlay's lock, held exclusively (to build it) until the caller shares it."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(cache.parent, 0o700)
    with open(cache.with_name(f".{cache.name}.lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield handle.fileno()


def _password_file(folder: Path, password: str) -> Path:
    path = folder / f"db-{DATABASE}"
    path.write_text(password + "\n")
    os.chmod(path, 0o600)
    return path


# ---- HTTP from the host ----------------------------------------------------------------


def get(url: str, timeout: float = 10.0) -> tuple[int, str]:
    """Status and body of a GET from the host (the address checked by the guard first)."""
    network.assert_local_address(urllib.parse.urlsplit(url).hostname or "")
    request = urllib.request.Request(url, headers={"User-Agent": "migrate-tests"})
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def wait_answering(address: str, timeout: float = READY_TIMEOUT) -> None:
    """Until the notice page comes back with its text (read from the database)."""
    url = f"http://{address}/index.php?title={urllib.parse.quote(PAGE)}"
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            status, body = get(url)
        except OSError as error:
            last = str(error)
        else:
            if status == 200 and MARKER in body:
                return
            last = f"HTTP {status}"
        time.sleep(0.5)
    raise AssertionError(f"the wiki at {address} did not answer with its page: {last}")


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


def visit(address: str) -> None:
    """A few readers' requests, so the access log has something to show."""
    for path in ("/", "/index.php?title=" + urllib.parse.quote(PAGE),
                 "/index.php?title=Special:RecentChanges", "/images/8/8e/" + IMAGE_FILE,
                 "/index.php?title=" + urllib.parse.quote("不存在的页面"), "/robots.txt"):
        get(f"http://{address}{path}")

