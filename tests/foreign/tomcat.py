"""A second department server nobody here wrote: 发改委项目申报系统, a Java web application
on Tomcat with MariaDB, the kind most department systems are.

Built from Debian bookworm's own packages (tomcat10, mariadb-server, libmariadb-java)
through the package mirror, and set up the way a vendor's engineer once did by hand: a WAR
(built on the server with Python's zipfile: JSP pages, which Tomcat compiles itself) copied
into Tomcat's webapps, MariaDB's JDBC driver linked into Tomcat's lib, a context file
/etc/tomcat10/Catalina/localhost/xmsb.xml whose DataSource names the database host by the
server's own address (MariaDB listens there), a database user with a password and two
tables with rows, and uploads on disk in /srv/xmsb/uploads, which the application writes
(a systemd drop-in opens it to Tomcat's sandboxing). The application answers HTTP with the
projects it reads from the database.

Like the wiki (tests/foreign/server.py), it is built once and kept (tests/foreign/builder.py),
under /var/cache/migrate/foreign-tomcat/ (a folder of its own, so no server removes another's
kept overlay), and later sessions boot it read-only.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from migrate.rehearsal.sandbox import mirror, network
from tests.foreign import builder, world

RECIPE_VERSION = 1
NAME = "t-tomcat"  # the machine (veth vb-t-tomcat)
HOSTNAME = "fgw-app01"
HOST = 11  # 192.168.177.11
PACKAGES = ("tomcat10", "mariadb-server", "libmariadb-java")
APP = "xmsb"  # context path /xmsb, database xmsb, its user xmsb
DATABASE = USER = APP
PORT = 8080
CONTEXT_FILE = f"/etc/tomcat10/Catalina/localhost/{APP}.xml"
WAR = f"/var/lib/tomcat10/webapps/{APP}.war"
DRIVER_LINK = "/var/lib/tomcat10/lib/mariadb-java-client.jar"
DROP_IN = "/etc/systemd/system/tomcat10.service.d/xmsb-uploads.conf"
UPLOADS = "/srv/xmsb/uploads"
MARKER = "fgw-xmsb-52c8e0"
TITLE = "城东片区污水管网改造工程"
READY_TIMEOUT = 120.0
UPLOAD_FILES = 3  # seeded attachments, 512 KiB each: the folder holds 1.5 MiB
CLEANUP = "/usr/local/bin/xmsb-cleanup"  # run nightly by xmsb-cleanup.timer
TIMER = "/etc/systemd/system/xmsb-cleanup.timer"


@dataclass(frozen=True)
class TomcatServer(builder.KeptServer):  # at 192.168.177.11
    hostname: str
    db_password_file: Path
    database: str = DATABASE
    user: str = USER
    port: int = PORT
    context_file: str = CONTEXT_FILE
    war: str = WAR
    uploads: str = UPLOADS
    marker: str = MARKER

    def url(self, path: str = "/") -> str:
        return f"http://{self.address}:{self.port}/{APP}{path}"

    def sql(self, query: str) -> str:
        """A query as MariaDB's root (unix socket), tab-separated rows without headers."""
        return self.ssh(f"mariadb --batch --skip-column-names --default-character-set=utf8mb4"
                        f" {DATABASE}", stdin=query + "\n")


# ---- the application -------------------------------------------------------------------

INDEX_JSP = """<%@ page contentType="text/html; charset=UTF-8" pageEncoding="UTF-8"
    import="java.sql.*,javax.naming.*,javax.sql.DataSource" %>
<!DOCTYPE html>
<html><head><meta charset="UTF-8"><title>项目申报系统</title></head><body>
<h1>发改委项目申报系统</h1>
<table>
<%
DataSource source = (DataSource) new InitialContext().lookup("java:comp/env/jdbc/xmsb");
try (Connection db = source.getConnection();
     Statement query = db.createStatement();
     ResultSet row = query.executeQuery(
         "SELECT p.code, p.title, p.status, count(a.id) FROM projects p"
         + " LEFT JOIN attachments a ON a.project_id = p.id GROUP BY p.id ORDER BY p.id")) {
    while (row.next()) {
%><tr><td><%= row.getString(1) %></td><td><%= row.getString(2) %></td><td><%= row.getString(3)
%></td><td><%= row.getInt(4) %></td></tr>
<%  }
}
%>
</table>
<p>数据库：<%= application.getInitParameter("xmsb.name") %></p>
</body></html>
"""

# POST /xmsb/upload.jsp?project=CODE&name=FILE: the body is stored in the uploads folder and
# recorded in attachments (names checked: letters, digits, '.', '-', '_' only)
UPLOAD_JSP = """<%@ page contentType="text/plain; charset=UTF-8" pageEncoding="UTF-8"
    import="java.sql.*,java.nio.file.*,javax.naming.*,javax.sql.DataSource" %><%
String name = request.getParameter("name");
String code = request.getParameter("project");
if (!"POST".equals(request.getMethod()) || name == null || code == null
        || !name.matches("[A-Za-z0-9._-]{1,64}") || name.startsWith(".")) {
    response.setStatus(400);
    out.print("bad request");
    return;
}
byte[] body = request.getInputStream().readAllBytes();
Path stored = Paths.get(application.getInitParameter("xmsb.uploads"), name);
Files.write(stored, body);
DataSource source = (DataSource) new InitialContext().lookup("java:comp/env/jdbc/xmsb");
try (Connection db = source.getConnection();
     PreparedStatement insert = db.prepareStatement(
         "INSERT INTO attachments (project_id, file_name, size_bytes)"
         + " SELECT id, ?, ? FROM projects WHERE code = ?")) {
    insert.setString(1, name);
    insert.setLong(2, body.length);
    insert.setString(3, code);
    out.print(insert.executeUpdate() == 1 ? "stored " + body.length : "no such project");
}
%>"""

WEB_XML = """<?xml version="1.0" encoding="UTF-8"?>
<web-app xmlns="https://jakarta.ee/xml/ns/jakartaee" version="5.0">
  <display-name>xmsb</display-name>
  <resource-ref>
    <res-ref-name>jdbc/xmsb</res-ref-name>
    <res-type>javax.sql.DataSource</res-type>
    <res-auth>Container</res-auth>
  </resource-ref>
  <welcome-file-list><welcome-file>index.jsp</welcome-file></welcome-file-list>
</web-app>
"""

BUILD_WAR = f"""import sys, zipfile
pages = {{"index.jsp": {INDEX_JSP!r}, "upload.jsp": {UPLOAD_JSP!r},
          "WEB-INF/web.xml": {WEB_XML!r},
          "META-INF/MANIFEST.MF": "Manifest-Version: 1.0\\nCreated-By: xmsb build 1.4.2\\n"}}
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as war:
    for name, text in pages.items():
        war.writestr(name, text.encode("utf-8"))
"""


def setup_script(address: str) -> str:
    """What the vendor's engineer did, as one shell script run as root on the server (the
    database password in /root/setup/dbpass, sent over ssh's stdin, removed at the end)."""
    return f"""set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
IP={address}
apt-get update -q
apt-get install -y -q --no-install-recommends {' '.join(PACKAGES)}

# MariaDB on the server's own address (the application names it in its context file)
printf '[mysqld]\\nbind-address = %s\\n' "$IP" > /etc/mysql/mariadb.conf.d/60-xmsb.cnf
systemctl restart mariadb
PASS=$(cat /root/setup/dbpass)
mariadb --default-character-set=utf8mb4 <<SQL
CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER '{USER}'@'$IP' IDENTIFIED BY '$PASS';
GRANT SELECT, INSERT, UPDATE, DELETE ON {DATABASE}.* TO '{USER}'@'$IP';
USE {DATABASE};
CREATE TABLE projects (id INT AUTO_INCREMENT PRIMARY KEY, code VARCHAR(32) UNIQUE NOT NULL,
  title VARCHAR(200) NOT NULL, department VARCHAR(100) NOT NULL, amount_wan DECIMAL(12,2),
  status VARCHAR(20) NOT NULL, created_at DATETIME DEFAULT CURRENT_TIMESTAMP) ENGINE=InnoDB;
CREATE TABLE attachments (id INT AUTO_INCREMENT PRIMARY KEY, project_id INT NOT NULL,
  file_name VARCHAR(64) NOT NULL, size_bytes BIGINT NOT NULL,
  FOREIGN KEY (project_id) REFERENCES projects (id)) ENGINE=InnoDB;
INSERT INTO projects (code, title, department, amount_wan, status) VALUES
  ('XM2026-001', '{TITLE}', '城建科', 3280.50, '已批复'),
  ('XM2026-002', '老旧小区加装电梯（第三批）', '住房科', 1260.00, '审核中'),
  ('XM2026-003', '智慧停车平台建设 {MARKER}', '交通科', 845.75, '已受理'),
  ('XM2026-004', '中心医院门诊楼扩建', '社会科', 15600.00, '已批复');
SQL

# uploads: a folder the application writes, opened to Tomcat's systemd sandboxing
install -d -o tomcat -g tomcat -m 0750 /srv/xmsb {UPLOADS}
for i in $(seq 1 {UPLOAD_FILES}); do
  head -c 524288 /dev/urandom > {UPLOADS}/scan$i.pdf
  echo "INSERT INTO {DATABASE}.attachments (project_id, file_name, size_bytes)
        VALUES ($i, 'scan$i.pdf', 524288);" | mariadb --default-character-set=utf8mb4
done
chown tomcat:tomcat {UPLOADS}/*
install -d /etc/systemd/system/tomcat10.service.d
printf '[Service]\\nReadWritePaths={UPLOADS}\\n' > {DROP_IN}

# a nightly clean-up of abandoned partial uploads, by a systemd timer of its own
cat > {CLEANUP} <<'SH'
#!/bin/sh
# 删除超过 30 天的未完成上传
find {UPLOADS} -name '*.part' -mtime +30 -delete
SH
chmod 755 {CLEANUP}
cat > /etc/systemd/system/xmsb-cleanup.service <<'UNIT'
[Unit]
Description=项目申报系统 清理未完成上传
[Service]
Type=oneshot
User=tomcat
ExecStart={CLEANUP}
UNIT
cat > {TIMER} <<'UNIT'
[Unit]
Description=项目申报系统 每晚清理
[Timer]
OnCalendar=*-*-* 02:30:00
[Install]
WantedBy=timers.target
UNIT

# the JDBC driver in Tomcat's lib, the WAR copied in, the context file with the DataSource
install -d /var/lib/tomcat10/lib
ln -sf /usr/share/java/mariadb-java-client.jar {DRIVER_LINK}
python3 - /root/setup/{APP}.war <<'PY'
{BUILD_WAR}
PY
install -o tomcat -g tomcat -m 0644 /root/setup/{APP}.war {WAR}
install -d -o root -g tomcat -m 0775 /etc/tomcat10/Catalina /etc/tomcat10/Catalina/localhost
cat > {CONTEXT_FILE} <<XML
<?xml version="1.0" encoding="UTF-8"?>
<Context>
  <Resource name="jdbc/xmsb" auth="Container" type="javax.sql.DataSource"
            driverClassName="org.mariadb.jdbc.Driver"
            url="jdbc:mariadb://$IP:3306/{DATABASE}?useUnicode=true&amp;characterEncoding=utf8"
            username="{USER}"
            password="$PASS"
            maxTotal="10" maxIdle="2"/>
  <Parameter name="xmsb.name" value="{DATABASE}"/>
  <Parameter name="xmsb.uploads" value="{UPLOADS}"/>
</Context>
XML
chown root:tomcat {CONTEXT_FILE}
chmod 640 {CONTEXT_FILE}
systemctl daemon-reload
systemctl enable mariadb tomcat10 xmsb-cleanup.timer
systemctl restart tomcat10
rm -rf /root/setup
apt-get clean
"""


RECIPE = builder.Recipe(
    name="foreign-tomcat", version=RECIPE_VERSION, machine=NAME, hostname=HOSTNAME, host=HOST,
    packages=PACKAGES, script=setup_script, answering=lambda address: wait_answering(address),
    secrets=(("dbpass", "db_password"),))


# ---- the fixture -----------------------------------------------------------------------


@contextmanager
def department_tomcat(net: world.Net, package_mirror: mirror.Mirror, root: Path,
                      access: world.Access) -> Iterator[TomcatServer]:
    """The Tomcat server, answering; destroyed (by its name) afterwards. Built once and kept
    (tests/foreign/builder.py), in a cache folder of its own."""
    with builder.kept_server(RECIPE, net, package_mirror, root, access) as booted:
        yield TomcatServer(
            **booted.shared(), hostname=HOSTNAME,
            db_password_file=builder.password_file(access.key.parent, DATABASE,
                                                   booted.facts["db_password"]))


def wait_answering(address: str, timeout: float = READY_TIMEOUT) -> None:
    """Until the project list comes back with the marker (read from the database); the
    first request also has Tomcat compile the JSP."""
    builder.wait_for(f"http://{address}:{PORT}/{APP}/",
                     lambda status, body: status == 200 and MARKER in body, timeout,
                     f"the application at {address} did not answer with its data",
                     request_timeout=30, pause=1)


def post(url: str, body: bytes, timeout: float = 30.0) -> tuple[int, str]:
    network.assert_local_address(urllib.parse.urlsplit(url).hostname or "")
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/octet-stream"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
