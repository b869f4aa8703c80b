"""A department server on MariaDB nobody here wrote: 区商务局的门店登记 (a shop registry).

Debian bookworm's ``mariadb-server`` installed through the package mirror, configured the
way its administrator once did: the binlog on (ROW, a server_id, listening on every address:
``SERVER_SETTINGS``), a database ``shop`` (utf8mb4) with its tables, a user
``shopapp``@``localhost`` with a password and every right on ``shop``, and a small service
``shop-web`` (python3, port 8080) that logs in as that user: its ``/health`` answers 200 only
when a query of the database succeeds, and when it stops it writes the stop into ``shop.events``
(as applications that flush their state on shutdown do), so a cutover's freeze writes rows
after the copy.

Built once per recipe and kept as an overlay under /var/cache/migrate/foreign-mariadb/ (by
tests/foreign/builder.py, as every foreign server: a folder of its own, so no server ever
removes another's), with the password it was built with (0600).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from migrate.rehearsal.sandbox import mirror
from tests.foreign import builder, world

RECIPE_VERSION = 2  # 2: the binlog (ROW), a server_id and networking, for replication
NAME = "t-shopdb"  # the machine (veth vb-t-shopdb)
HOSTNAME = "shop01"
HOST = 20  # 192.168.177.20
PACKAGES = ("mariadb-server",)
DATABASE, USER = "shop", "shopapp"
PORT = 8080
ITEMS = 2000
READY_TIMEOUT = 60.0

APP = r'''"""shop-web: the registry's health answer, read from its database as shopapp."""
import http.server
import subprocess

QUERY = "SELECT COUNT(*) FROM items"


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        done = subprocess.run(["mariadb", "--defaults-extra-file=/etc/shop/client.cnf",
                               "-N", "-B", "shop", "-e", QUERY],
                              capture_output=True, text=True, check=False)
        status = 200 if self.path == "/health" and done.returncode == 0 else 503
        body = f"items {done.stdout.strip()}\n".encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


http.server.ThreadingHTTPServer(("", 8080), Handler).serve_forever()
'''

UNIT = """[Unit]
Description=区商务局门店登记 (shop registry)
After=mariadb.service

[Service]
User=shop
Group=shop
ExecStart=/usr/bin/python3 /srv/shop/app.py
ExecStop=/usr/bin/mariadb --defaults-extra-file=/etc/shop/client.cnf shop \\
    -e "INSERT INTO events (what) VALUES ('stopped')"

[Install]
WantedBy=multi-user.target
"""

SCHEMA = f"""
CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
USE {DATABASE};
CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(64) NOT NULL,
                    price DECIMAL(10, 2) NOT NULL, note TEXT NULL, photo BLOB NULL,
                    registered DATETIME NOT NULL);
CREATE TABLE orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, item INT NOT NULL,
                     quantity INT NOT NULL, FOREIGN KEY (item) REFERENCES items (id));
CREATE TABLE events (at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
                     what VARCHAR(32) NOT NULL);
INSERT INTO items (name, price, note, photo, registered)
SELECT CONCAT('门店商品-', seq), seq * 1.25, IF(seq % 7 = 0, NULL, CONCAT('备注 ''', seq, '''')),
       IF(seq % 5 = 0, UNHEX(MD5(seq)), NULL), '2024-01-01' + INTERVAL seq MINUTE
FROM seq_1_to_{ITEMS};
INSERT INTO orders (item, quantity) SELECT 1 + seq % {ITEMS}, seq % 9 FROM seq_1_to_500;
CREATE VIEW expensive AS SELECT id, name FROM items WHERE price > 1000;
"""


# As its administrator set it up for the department's backups (a binlog to replay since the
# last dump), which is what a replica follows too.
SERVER_SETTINGS = f"""[mariadbd]
log_bin = mariadb-bin
binlog_format = ROW
server_id = {HOST}
bind_address = 0.0.0.0
"""


@dataclass(frozen=True)
class ShopServer(builder.KeptServer):  # at 192.168.177.20
    password_file: Path  # on the host, 0600: shopapp's password, as an estate keeps it
    database: str = DATABASE
    user: str = USER
    port: int = PORT


def setup_script() -> str:
    """What the admin did, as root on the server; the password is in /root/setup/dbpass
    (sent over ssh's stdin; letters, digits, '-' and '_' only), removed at the end."""
    return f"""set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends {' '.join(PACKAGES)}
cat > /etc/mysql/mariadb.conf.d/60-shop.cnf <<'CNF'
{SERVER_SETTINGS}CNF
systemctl enable mariadb
systemctl restart mariadb
PASS="$(cat /root/setup/dbpass)"
mariadb <<SQL
{SCHEMA}
CREATE USER '{USER}'@'localhost' IDENTIFIED BY '$PASS';
GRANT SELECT, INSERT, UPDATE, DELETE ON {DATABASE}.* TO '{USER}'@'localhost';
SQL
useradd --system --user-group --no-create-home --shell /usr/sbin/nologin shop
install -d -m 0755 /srv/shop /etc/shop
cat > /srv/shop/app.py <<'PY'
{APP}PY
umask 027
printf '[client]\\nuser={USER}\\npassword=%s\\n' "$PASS" > /etc/shop/client.cnf
chgrp shop /etc/shop/client.cnf
umask 022
cat > /etc/systemd/system/shop-web.service <<'UNIT'
{UNIT}UNIT
systemctl daemon-reload
systemctl enable --now shop-web
rm -rf /root/setup
apt-get clean
"""


RECIPE = builder.Recipe(
    name="foreign-mariadb", version=RECIPE_VERSION, machine=NAME, hostname=HOSTNAME,
    host=HOST, packages=PACKAGES, script=lambda _address: setup_script(),
    answering=lambda address: wait_healthy(address), secrets=(("dbpass", "db_password"),))


@contextmanager
def shop_registry(net: world.Net, package_mirror: mirror.Mirror, root: Path,
                  access: world.Access) -> Iterator[ShopServer]:
    """The registry's server, answering its health path; destroyed (by its name) afterwards.
    Built once and kept (tests/foreign/builder.py)."""
    with builder.kept_server(RECIPE, net, package_mirror, root, access) as booted:
        yield ShopServer(**booted.shared(),
                         password_file=builder.password_file(access.key.parent, DATABASE,
                                                             booted.facts["db_password"]))


def health(address: str, timeout: float = 5.0) -> tuple[int, str]:
    """Status and body of shop-web's /health from the host (the guard checks the address)."""
    return builder.get(f"http://{address}:{PORT}/health", timeout=timeout)


def wait_healthy(address: str, timeout: float = READY_TIMEOUT) -> None:
    builder.wait_for(f"http://{address}:{PORT}/health", lambda status, _body: status == 200,
                     timeout, f"shop-web at {address} did not answer /health",
                     request_timeout=5.0)
