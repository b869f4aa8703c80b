"""Discovery of what a department server hides besides its TCP services and PostgreSQL:
php-fpm behind a unix socket, the modules its runtimes load, systemd timers, Tomcat's
hand-deployed applications, and MariaDB (databases, sizes, users and grants, where the
application's configuration names the server). Parsers on command output, probes over a
scripted session (no host), and the draft these make."""

# The samples are verbatim command output: their lines are as long as the commands made them.
# ruff: noqa: E501

from __future__ import annotations

import copy
import time
from datetime import date
from pathlib import Path

import pytest
import yaml

from migrate.adapters.access import CommandResult, Login, SourceSession
from migrate.core.model import SystemManifest
from migrate.orchestrate.pipeline import open_estate
from migrate.stages.discovery import gaps, parsers, probes
from migrate.stages.discovery.draft import DraftHost, build_draft, render, validate_draft

NGINX_T = """# configuration file /etc/nginx/sites-enabled/wiki:
server {
    listen 80 default_server;
    root /var/lib/mediawiki;
    location ~ \\.php$ {
        include snippets/fastcgi-php.conf;
        fastcgi_pass unix:/run/php/php8.2-fpm.sock;
    }
    # fastcgi_pass unix:/run/php/php7.4-fpm.sock;
    location /api/ { proxy_pass http://unix:/run/gunicorn/api.sock:/; }
}
"""
SS_UNIX = """u_str LISTEN 0      511    /run/php/php8.2-fpm.sock 20391            * 0     users:(("php-fpm8.2",pid=311,fd=9),("php-fpm8.2",pid=310,fd=9),("php-fpm8.2",pid=309,fd=7))
u_str LISTEN 0      4096   /run/systemd/private 13201            * 0     users:(("systemd",pid=1,fd=20))
u_str LISTEN 0      4096   @/org/freedesktop/systemd1/notify 13190 * 0 users:(("systemd",pid=1,fd=14))
"""
CGROUPS = "309\t0::/system.slice/php8.2-fpm.service\n310\t0::/system.slice/php8.2-fpm.service\n311\t0::/system.slice/php8.2-fpm.service\n"
TIMER_LIST = """apt-daily.timer        loaded active waiting Daily apt download activities
xmsb-cleanup.timer     loaded active waiting 清理临时上传
"""
TIMER_SHOW = """Id=apt-daily.timer
Triggers=apt-daily.service
FragmentPath=/lib/systemd/system/apt-daily.timer
UnitFileState=enabled
TimersCalendar={ OnCalendar=*-*-* 6,18:00:00 ; next_elapse=Sun 2026-12-06 18:00:00 UTC }
TimersMonotonic=
WantedBy=timers.target

Id=xmsb-cleanup.timer
Triggers=xmsb-cleanup.service
FragmentPath=/etc/systemd/system/xmsb-cleanup.timer
UnitFileState=enabled
TimersCalendar={ OnCalendar=*-*-* 02:30:00 ; next_elapse=Mon 2026-12-07 02:30:00 UTC }
TimersMonotonic=
WantedBy=timers.target
"""
SERVICE_SHOW = """Id=xmsb-cleanup.service
Description=清理临时上传
WorkingDirectory=/srv/xmsb
ExecStart={ path=/usr/local/bin/xmsb-cleanup ; argv[]=/usr/local/bin/xmsb-cleanup --days 30 ; ignore_errors=no ; start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }
User=tomcat
FragmentPath=/etc/systemd/system/xmsb-cleanup.service
EnvironmentFiles=
ActiveState=inactive
UnitFileState=static
DropInPaths=
"""
MODULES = """/etc/php/8.2/fpm/conf.d/10-opcache.ini\t/etc/php/8.2/mods-available/opcache.ini
/etc/php/8.2/fpm/conf.d/20-pgsql.ini\t/etc/php/8.2/mods-available/pgsql.ini
/var/lib/tomcat10/lib/mariadb-java-client.jar\t/usr/share/java/mariadb-java-client-2.7.6.jar
/var/lib/tomcat10/lib/vendor-sso.jar\t/var/lib/tomcat10/lib/vendor-sso.jar
"""
DPKG_S = {"/etc/php/8.2/mods-available/opcache.ini": "php8.2-opcache",
          "/etc/php/8.2/mods-available/pgsql.ini": "php8.2-pgsql",
          "/usr/share/java/mariadb-java-client-2.7.6.jar": "libmariadb-java",
          "/lib/systemd/system/apt-daily.timer": "apt",
          "/var/lib/tomcat10/webapps/ROOT": "tomcat10"}
TOMCAT_LIST = """/var/lib/tomcat10/webapps/ROOT/
/var/lib/tomcat10/webapps/xmsb.war
/var/lib/tomcat10/webapps/xmsb/
/var/lib/tomcat10/lib/mariadb-java-client.jar
/etc/tomcat10/Catalina/localhost/xmsb.xml
"""
MARIADB = """### settings
bind_address\t192.168.177.11
datadir\t/var/lib/mysql/
log_bin\tOFF
port\t3306
version\t10.11.11-MariaDB-0+deb12u1
### databases
information_schema\t0\tutf8mb3\t0\t0
mysql\t2605056\tutf8mb4\t31\t2
xmsb\t81920\tutf8mb4\t2\t0
x'y\\tz\t16384\tutf8mb4\t1\t1
### users
mariadb.sys\tlocalhost\tmysql_native_password
root\tlocalhost\tmysql_native_password
xmsb\t192.168.177.11\tmysql_native_password
### grants
'xmsb'@'192.168.177.11'\txmsb\tDELETE
'xmsb'@'192.168.177.11'\txmsb\tINSERT
'xmsb'@'192.168.177.11'\txmsb\tSELECT
'xmsb'@'192.168.177.11'\txmsb\tUPDATE
### global
'root'@'localhost'\tALL PRIVILEGES
'xmsb'@'192.168.177.11'\tUSAGE
"""
CONTEXT_HITS = """/etc/tomcat10/Catalina/localhost/xmsb.xml:5:            url="jdbc:mariadb://192.168.177.11:3306/xmsb?useUnicode=true&amp;characterEncoding=utf8"
/srv/shop/config.php:3:define('DB_HOST', 'db.dept.local');
"""


class Scripted(SourceSession):
    """Answers commands by substring (first match in ``answers``); records them."""

    def __init__(self, answers: dict[str, str], user: str = "root") -> None:
        super().__init__(Login("192.168.177.11", user, None), client=None)  # type: ignore[arg-type]
        self.answers = answers
        self.commands: list[str] = []

    def run(self, command: str, timeout: float = 0) -> CommandResult:
        self.commands.append(command)
        if command.startswith("dpkg -S") or "sh -c 'dpkg -S" in command:
            lines = [f"{package}: {path}" for path, package in DPKG_S.items() if path in command]
            return CommandResult(0 if lines else 1, "\n".join(lines) + "\n", "")
        answer = next((text for key, text in self.answers.items() if key in command), None)
        return CommandResult(0, answer or "", "")


# ---- php-fpm behind a unix socket -----------------------------------------------------------


def test_the_web_servers_unix_sockets_and_the_units_behind_them() -> None:
    assert parsers.parse_socket_references(NGINX_T) == ["/run/gunicorn/api.sock",
                                                        "/run/php/php8.2-fpm.sock"]
    assert parsers.parse_socket_references(
        'SetHandler "proxy:unix:/run/php/php8.2-fpm.sock|fcgi://localhost"') == [
        "/run/php/php8.2-fpm.sock"]
    assert parsers.parse_ss_unix(SS_UNIX) == {"/run/php/php8.2-fpm.sock": [309, 310, 311],
                                              "/run/systemd/private": [1]}
    session = Scripted({"nginx -T": NGINX_T, "ss -H -lxp": SS_UNIX, "for p in": CGROUPS})
    assert probes.probe_unix_sockets(session) == [
        {"socket": "/run/gunicorn/api.sock", "listening": False, "unit": None},
        {"socket": "/run/php/php8.2-fpm.sock", "listening": True,
         "unit": "php8.2-fpm.service"}]


# ---- modules a runtime loads ----------------------------------------------------------------


def test_runtime_modules_name_the_packages_the_target_installs() -> None:
    modules = probes.probe_runtime_modules(Scripted({"for f in /etc/php": MODULES}))
    assert [(m["runtime"], m["file"].rsplit("/", 1)[1], m["packages"]) for m in modules] == [
        ("php8.2-fpm", "10-opcache.ini", ["php8.2-opcache"]),
        ("php8.2-fpm", "20-pgsql.ini", ["php8.2-pgsql"]),
        ("tomcat10", "mariadb-java-client.jar", ["libmariadb-java"]),
        ("tomcat10", "vendor-sso.jar", [])]  # copied in by hand: no package


def test_a_php_ini_no_package_owns_is_traced_to_the_extension_it_loads() -> None:
    """Debian's postinst writes mods-available/*.ini: the .so it names is the package's."""
    modules = MODULES.replace("/etc/php/8.2/mods-available/pgsql.ini",
                              "/etc/php/8.2/mods-available/pdo_pgsql.ini")
    session = Scripted({"extension": "/etc/php/8.2/mods-available/pdo_pgsql.ini\t"
                                     "/usr/lib/php/20220829/pdo_pgsql.so\n",
                        "for f in /etc/php": modules})
    DPKG_S["/usr/lib/php/20220829/pdo_pgsql.so"] = "php8.2-pgsql"
    try:
        found = {m["file"]: m for m in probes.probe_runtime_modules(session)}
    finally:
        del DPKG_S["/usr/lib/php/20220829/pdo_pgsql.so"]
    pgsql = found["/etc/php/8.2/fpm/conf.d/20-pgsql.ini"]
    assert (pgsql["loads"], pgsql["packages"]) == ("/usr/lib/php/20220829/pdo_pgsql.so",
                                                    ["php8.2-pgsql"])
    [lookup] = [c for c in session.commands if "extension" in c]
    assert "for f in /etc/php/8.2/mods-available/pdo_pgsql.ini; do" in lookup  # unowned only


# ---- timers -------------------------------------------------------------------------------


def test_timers_with_the_service_they_trigger_and_whether_a_package_brought_them() -> None:
    session = Scripted({"list-units --type=timer": TIMER_LIST, "-p Triggers": TIMER_SHOW,
                        "systemctl show": SERVICE_SHOW})
    timers = {t["timer"]: t for t in probes.probe_timers(session)}
    assert timers["apt-daily.timer"]["local"] is False
    local = timers["xmsb-cleanup.timer"]
    assert local["local"] is True and local["schedule"] == "OnCalendar=*-*-* 02:30:00"
    assert local["wanted_by"] == ["timers.target"] and local["enabled"] == "enabled"
    assert [(s["unit"], s["exec_start"], s["user"]) for s in local["services"]] == [
        ("xmsb-cleanup.service", ["/usr/local/bin/xmsb-cleanup --days 30"], "tomcat")]


# ---- Tomcat -------------------------------------------------------------------------------


def test_tomcat_lists_what_no_package_brought() -> None:
    session = Scripted({"/webapps\" ] && echo": "/var/lib/tomcat10\n",
                        "/webapps/* ": TOMCAT_LIST})
    assert probes.probe_tomcat(session) == {
        "bases": ["/var/lib/tomcat10"],
        "webapps": ["/var/lib/tomcat10/webapps/xmsb.war", "/var/lib/tomcat10/webapps/xmsb/"],
        "libraries": ["/var/lib/tomcat10/lib/mariadb-java-client.jar"],
        "contexts": ["/etc/tomcat10/Catalina/localhost/xmsb.xml"]}
    assert probes.probe_tomcat(Scripted({})) is None


# ---- MariaDB ------------------------------------------------------------------------------


def test_mariadb_databases_sizes_users_and_grants_in_one_client_run() -> None:
    session = Scripted({"--batch --skip-column-names": MARIADB}, user="ops")
    server = probes.probe_mariadb(session, watch_s=0)
    assert server is not None and server["version"].startswith("10.11")
    databases = {d["name"]: d for d in server["databases"]}
    assert databases["xmsb"] == {"name": "xmsb", "size_bytes": 81920, "encoding": "utf8mb4",
                                 "tables": 2, "non_innodb_tables": 0, "system": False,
                                 "grants": [{"user": "xmsb", "host": "192.168.177.11",
                                             "privileges": ["DELETE", "INSERT", "SELECT",
                                                            "UPDATE"]}]}
    assert databases["mysql"]["system"] and databases["information_schema"]["system"]
    assert "x'y\tz" in databases  # the client's escapes undone: the name as the server has it
    users = {(u["user"], u["host"]): u for u in server["users"]}
    assert users[("root", "localhost")]["global_privileges"] == ["ALL PRIVILEGES"]
    assert users[("xmsb", "192.168.177.11")]["global_privileges"] == []
    [client] = [c for c in session.commands if "--batch" in c]
    assert client.startswith("sudo -n sh -c ")  # root's unix socket, through sudo
    # one fixed script: nothing read from the host is in it, no password hash is selected
    assert "authentication_string" not in client and "password" not in client.lower()
    assert probes.probe_mariadb(NoClient({})) is None


class NoClient(Scripted):
    def run(self, command: str, timeout: float = 0) -> CommandResult:
        self.commands.append(command)
        return CommandResult(1, "", "")


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The seconds discovery waited for its watch window, none of them spent."""
    waited: list[float] = []
    monkeypatch.setattr(time, "sleep", waited.append)
    return waited


# every table's rows and CHECKSUM TABLE, each sample as the client prints it (escapes and all)
WATCH_BEFORE = """### before
rows\txmsb\tattachments\t3
xmsb.attachments\t1702946345
rows\txmsb\tprojects\t5
xmsb.projects\t99
rows\tx'y\\tz\tlog.2024\t2
x'y\\tz.log.2024\t70
"""
WATCH_AFTER = """### after
rows\txmsb\tattachments\t4
xmsb.attachments\t55
rows\txmsb\tprojects\t5
xmsb.projects\t99
rows\tx'y\\tz\tlog.2024\t2
x'y\\tz.log.2024\t71
"""
# each answers the client run that prints its marker
WATCH = {"### before": WATCH_BEFORE, "### after": WATCH_AFTER}


def test_mariadb_tables_that_change_while_discovery_watches(waits: list[float]) -> None:
    session = Scripted({**WATCH, "--batch --skip-column-names": MARIADB}, user="ops")
    server = probes.probe_mariadb(session, watch_s=7)
    assert server is not None
    databases = {d["name"]: d for d in server["databases"]}
    assert databases["xmsb"]["watched_s"] == 7
    assert databases["xmsb"]["written_while_watched"] == [  # projects: read, not written
        {"table": "xmsb.attachments", "rows_before": 3, "rows_after": 4}]
    # the same rows, another checksum: updated in place; a dot in a name is no schema's end
    assert databases["x'y\tz"]["written_while_watched"] == [
        {"table": "x'y\tz.log.2024", "rows_before": 2, "rows_after": 2}]
    assert "watched_s" not in databases["mysql"]  # the server's own: not watched
    # two samples 7 s apart, waited here: no command sleeps on the host
    assert waits == [pytest.approx(7, abs=1)]
    samples = [c for c in session.commands if "CHECKSUM TABLE" in c]
    assert samples == [probes.mysql_sample_command(session, "before"),
                       probes.mysql_sample_command(session, "after")]
    for sample in samples:
        assert sample.startswith("sudo -n sh -c ") and "SLEEP" not in sample
        # one fixed command: the server makes the statements, no name it holds is in it
        assert "xmsb" not in sample and "x'y" not in sample


def test_mariadb_samples_compare_rows_and_checksum() -> None:
    before = parsers.parse_table_samples(parsers.parse_mysql_batch(
        "rows\ta\tt\t1\na.t\t10\nrows\ta\tgone\t1\na.gone\t5\nrows\ta\tsame\t0\na.same\t0\n"))
    after = parsers.parse_table_samples(parsers.parse_mysql_batch(
        "rows\ta\tt\t1\na.t\t11\nrows\ta\tsame\t0\na.same\t0\nrows\ta\tnew\t0\na.new\tNULL\n"))
    assert before[("a", "t")] == ("1", "10")
    assert parsers.changed_tables(before, after) == [
        {"schema": "a", "table": "a.gone", "rows_before": 1, "rows_after": None},
        {"schema": "a", "table": "a.new", "rows_before": None, "rows_after": 0},
        {"schema": "a", "table": "a.t", "rows_before": 1, "rows_after": 1}]


def test_a_database_named_like_a_marker_does_not_split_the_samples(waits: list[float]
                                                                   ) -> None:
    before, after = parsers.parse_watch("### before\nrows\t### after\tt\t1\n### after.t\t9\n"
                                        "rows\ta\tt\t1\na.t\t5\n### after\n"
                                        "rows\t### after\tt\t1\n### after.t\t9\n"
                                        "rows\ta\tt\t2\na.t\t6\n")
    assert before == {("### after", "t"): ("1", "9"), ("a", "t"): ("1", "5")}
    assert [t["table"] for t in parsers.changed_tables(before, after)] == ["a.t"]
    with pytest.raises(probes.ProbeFailed, match="no after sample"):
        probes.probe_mariadb(Scripted({"CHECKSUM TABLE": "### before\n",
                                       "--batch --skip-column-names": MARIADB}), watch_s=1)


def test_mariadb_is_not_watched_when_told_so(waits: list[float]) -> None:
    session = Scripted({**WATCH, "--batch --skip-column-names": MARIADB})
    server = probes.probe_mariadb(session, watch_s=0)
    assert server is not None and not any("CHECKSUM TABLE" in c for c in session.commands)
    assert waits == []
    assert all("watched_s" not in d for d in server["databases"])


def test_configuration_naming_a_database_server() -> None:
    hits = parsers.parse_grep_lines(CONTEXT_HITS)
    assert parsers.parse_database_references(hits) == [
        {"file": "/etc/tomcat10/Catalina/localhost/xmsb.xml", "line": 5, "engine": "mariadb",
         "host": "192.168.177.11", "port": 3306, "database": "xmsb"},
        {"file": "/srv/shop/config.php", "line": 3, "engine": None, "host": "db.dept.local",
         "port": None, "database": None}]
    references = parsers.parse_database_references([
        {"file": "/a", "line": 1, "text": '$wgDBserver = "192.168.177.10";'},
        {"file": "/b", "line": 2, "text": "spring.datasource.url=jdbc:mysql://db1/app"},
        {"file": "/c", "line": 3, "text": "'host' => '127.0.0.1',"}])
    assert [(r["host"], r["engine"], r["database"]) for r in references] == [
        ("192.168.177.10", None, None), ("db1", "mariadb", "app"), ("127.0.0.1", None, None)]
    assert parsers.parse_grantee("'o''brien'@'10.0.%'") == ("o'brien", "10.0.%")
    assert parsers.parse_grantee("root@localhost") is None


# ---- the draft ----------------------------------------------------------------------------

TOMCAT_HOST = {
    "hardware": {"hostname": "fgw-app01", "cpus": 2, "mem_kb": 4028712,
                 "root_used_kb": 3514880},
    "listening": [
        {"address": "*", "port": 22, "process": "sshd", "pids": [1], "loopback": False,
         "unit": "ssh.service"},
        {"address": "192.168.177.11", "port": 3306, "process": "mariadbd", "pids": [2],
         "loopback": False, "unit": "mariadb.service"},
        {"address": "*", "port": 8080, "process": "java", "pids": [3], "loopback": False,
         "unit": "tomcat10.service"},
        {"address": "*", "port": 80, "process": "nginx", "pids": [4], "loopback": False,
         "unit": "nginx.service"}],
    "unix_sockets": [{"socket": "/run/php/php8.2-fpm.sock", "listening": True,
                      "unit": "php8.2-fpm.service"}],
    "units": [{"unit": "tomcat10.service", "working_directory": None,
               "fragment": "/lib/systemd/system/tomcat10.service",
               "drop_ins": ["/etc/systemd/system/tomcat10.service.d/xmsb-uploads.conf"],
               "exec_start": ["/bin/sh /usr/libexec/tomcat10/tomcat-start.sh"]}],
    "data_directories": [{"path": "/srv/xmsb", "size_kb": 1540},
                         {"path": "/var/lib/mysql", "size_kb": 90000}],
    "postgresql": None,
    "mariadb": probes.probe_mariadb(Scripted({"--batch": MARIADB}), watch_s=0),
    "timers": probes.probe_timers(Scripted({"list-units --type=timer": TIMER_LIST,
                                            "-p Triggers": TIMER_SHOW,
                                            "systemctl show": SERVICE_SHOW})),
    "runtime_modules": probes.probe_runtime_modules(Scripted({"for f in /etc/php": MODULES})),
    "tomcat": {"bases": ["/var/lib/tomcat10"],
               "webapps": ["/var/lib/tomcat10/webapps/xmsb.war",
                           "/var/lib/tomcat10/webapps/xmsb/"],
               "libraries": ["/var/lib/tomcat10/lib/mariadb-java-client.jar"],
               "contexts": ["/etc/tomcat10/Catalina/localhost/xmsb.xml"]},
    "database_references": parsers.parse_database_references(
        parsers.parse_grep_lines(CONTEXT_HITS)),
    "address_mentions": parsers.parse_grep_lines(CONTEXT_HITS.splitlines()[0] + "\n"),
    "package_owners": {"/lib/systemd/system/tomcat10.service": ["tomcat10"],
                       "/lib/systemd/system/php8.2-fpm.service": ["php8.2-fpm"]},
}


def _tomcat_draft(estate: Path, tmp_path: Path, observed: dict | None = None):
    loaded = open_estate(estate)
    seen = observed or TOMCAT_HOST
    rewrites = gaps.rewrite_proposals({"192.168.177.11": "fgw-app01"}, {"fgw-app01": seen})
    draft = build_draft(loaded, "fgw-xmsb", [DraftHost("fgw-app01", "192.168.177.11", seen)],
                        "root", today=date(2026, 12, 6), rewrites=rewrites)
    path = tmp_path / "fgw-xmsb.draft.yaml"
    path.write_text(render(draft, ["Draft", ""]))
    return loaded, draft, path


def test_the_draft_carries_what_was_put_there_by_hand(estate: Path, tmp_path: Path) -> None:
    _loaded, _draft, path = _tomcat_draft(estate, tmp_path)
    data = yaml.safe_load(path.read_text())
    assert [(s["unit"], s["port"]) for s in data["workload"]["services"]] == [
        ("nginx.service", 80), ("tomcat10.service", 8080)]  # not mariadb: it moves as data
    assert [f["path"] for f in data["workload"]["files"]] == ["/srv/xmsb"]  # not /var/lib/mysql
    assert [c["path"] for c in data["workload"]["configuration"]] == [
        "/etc/tomcat10/Catalina/localhost/xmsb.xml",  # names the address: rewritten
        "/var/lib/tomcat10/webapps/xmsb.war",  # the expanded copy is Tomcat's own
        "/var/lib/tomcat10/lib/mariadb-java-client.jar",
        "/etc/systemd/system/tomcat10.service.d/xmsb-uploads.conf",
        "/etc/systemd/system/xmsb-cleanup.timer",
        "/etc/systemd/system/timers.target.wants/xmsb-cleanup.timer",
        "/etc/systemd/system/xmsb-cleanup.service",
        "/usr/local/bin/xmsb-cleanup"]
    assert data["workload"]["rewrites"] == [
        {"host": "fgw-app01", "file": "/etc/tomcat10/Catalina/localhost/xmsb.xml",
         "old": "192.168.177.11", "new": "${fgw-app01}"}]
    packages = data["target"]["instances"][0]["packages"]
    assert packages == ["libmariadb-java", "php8.2-fpm", "php8.2-opcache", "php8.2-pgsql",
                        "tomcat10"]
    text = path.read_text()
    assert "php8.2-fpm.service serves /run/php/php8.2-fpm.sock for the web server" in text
    assert "timer xmsb-cleanup.timer (OnCalendar=*-*-* 02:30:00)" in text
    assert "apt-daily" not in text  # a package's timer comes with its package


def test_mariadb_databases_are_proposed_with_user_size_and_where_they_are_named(
        estate: Path, tmp_path: Path) -> None:
    loaded, draft, path = _tomcat_draft(estate, tmp_path)
    data = yaml.safe_load(path.read_text())
    assert data["workload"]["databases"] == [
        {"host": "fgw-app01", "engine": "mariadb", "name": "xmsb", "size_gb": 0.01,
         "password": "secret://db-xmsb", "user": "xmsb"}]
    assert data["source"]["hosts"][0]["roles"] == ["web", "db"]
    line = next(t for t in path.read_text().splitlines() if "size_gb: 0.01  # observed: 81920" in t)
    assert "81920 bytes in 2 tables" in line
    assert "named in /etc/tomcat10/Catalina/localhost/xmsb.xml:5 as 192.168.177.11:3306" in line
    user = next(t for t in path.read_text().splitlines() if 'user: "xmsb"' in t)
    assert ('granted "xmsb"@"192.168.177.11": DELETE, INSERT, SELECT, UPDATE; a grant names '
            "the source's address 192.168.177.11") in user
    assert any('x\'y\\tz' in note for note in draft.left_out)  # not a plain name
    assert validate_draft(loaded, path, str(path)) == []


def test_the_draft_proposes_the_mariadb_tables_that_changed_while_watched(
        estate: Path, tmp_path: Path, waits: list[float]) -> None:
    seen = {**copy.deepcopy(TOMCAT_HOST), "mariadb": probes.probe_mariadb(
        Scripted({**WATCH, "--batch": MARIADB}), watch_s=7)}
    loaded, _draft, path = _tomcat_draft(estate, tmp_path, seen)
    assert validate_draft(loaded, path, str(path)) == []
    line = next(t for t in path.read_text().splitlines() if "volatile_tables" in t)
    assert line.endswith('volatile_tables: []  # proposal: written during a 7 s watch while the '
                         'application served: ["xmsb.attachments"]; copy here those it writes '
                         "to answer reads (caches, sessions), not those its users write")
    data = yaml.safe_load(path.read_text())
    data["workload"]["databases"][0]["volatile_tables"] = ["attachments"]  # xmsb.attachments
    system = SystemManifest.model_validate(data, strict=False)
    assert not [f for f in gaps.database_gaps(system, "fgw-app01", seen)
                if f["kind"] == "written_while_serving"]
    data["workload"]["databases"][0]["volatile_tables"] = []
    system = SystemManifest.model_validate(data, strict=False)
    [written] = [f for f in gaps.database_gaps(system, "fgw-app01", seen)
                 if f["kind"] == "written_while_serving"]
    assert written["tables"] == ["xmsb.attachments"]


def test_a_separate_mariadb_host_gets_a_flow_on_3306(estate: Path) -> None:
    web = {**copy.deepcopy(TOMCAT_HOST), "mariadb": None}
    db = {"hardware": {"hostname": "db1"}, "mariadb": TOMCAT_HOST["mariadb"]}
    loaded = open_estate(estate)
    draft = build_draft(loaded, "fgw-xmsb", [DraftHost("app1", "192.168.177.11", web),
                                             DraftHost("db1", "192.168.177.12", db)], "root")
    flows = draft.data["target"]["flows"]
    assert {"from": "app1", "to": "db1", "port": 3306} in flows


def test_gaps_name_an_undeclared_mariadb_database(estate: Path, tmp_path: Path) -> None:
    _loaded, _draft, path = _tomcat_draft(estate, tmp_path)
    data = yaml.safe_load(path.read_text())
    data["workload"]["databases"] = []
    system = SystemManifest.model_validate(data, strict=False)
    found = gaps.database_gaps(system, "fgw-app01", TOMCAT_HOST)
    undeclared = [f for f in found if f["kind"] == "undeclared_database"]
    assert [(f["database"], f["engine"], f["owner"]) for f in undeclared] == [
        ("x'y\tz", "mariadb", "?"), ("xmsb", "mariadb", "xmsb")]
    assert undeclared[1]["message"].startswith('MariaDB database "xmsb" (owner "xmsb", 81920')


LOOKUP = "{{ lookup('pipe', 'id > /tmp/pwned') }}"


def test_hostile_names_from_the_host_never_reach_the_draft(estate: Path, tmp_path: Path) -> None:
    seen = copy.deepcopy(TOMCAT_HOST)
    seen["tomcat"]["webapps"].append(f"/var/lib/tomcat10/webapps/{LOOKUP}.war")
    seen["tomcat"]["contexts"].append("/etc/tomcat10/Catalina/localhost/a\nworkload: {}.xml")
    seen["timers"][1]["fragment"] = f"/etc/systemd/system/{LOOKUP}.timer"
    seen["mariadb"]["databases"].append({"name": f"db{LOOKUP}", "size_bytes": 1, "tables": 0,
                                         "non_innodb_tables": 0, "system": False,
                                         "grants": []})
    seen["mariadb"]["databases"][2]["grants"].insert(
        0, {"user": f"u{LOOKUP}", "host": "%", "privileges": ["SELECT"]})
    loaded, draft, path = _tomcat_draft(estate, tmp_path, seen)
    assert validate_draft(loaded, path, str(path)) == []
    text = path.read_text()
    assert LOOKUP not in text and "\nworkload: {}" not in text  # named escaped only
    data = yaml.safe_load(text)
    assert [d["user"] for d in data["workload"]["databases"]] == ["xmsb"]
    assert len(data["workload"]["configuration"]) == 7  # the 8 less the timer's own file
    assert len([n for n in draft.left_out if "lookup" in n]) == 3


class Local(SourceSession):
    """Runs the probe's commands here, in bash (grep's own patterns are the point)."""

    def __init__(self) -> None:
        super().__init__(Login("127.0.0.1", "root", None), client=None)  # type: ignore[arg-type]

    def run(self, command: str, timeout: float = 0) -> CommandResult:
        import subprocess

        done = subprocess.run(["bash", "-c", command], capture_output=True, text=True,
                              timeout=60, check=False)
        return CommandResult(done.returncode, done.stdout, done.stderr)


def test_secrets_found_where_a_line_starts_with_the_key_or_xml_names_it(tmp_path: Path) -> None:
    context = tmp_path / "xmsb.xml"
    context.write_text('<Context>\n  <Resource name="jdbc/xmsb"\n            username="xmsb"\n'
                       '            password="s3cret-value"/>\n'
                       '  <Parameter name="sso.token" value="t0ken-value"/>\n'
                       '</Context>\n# password = commented-value\n')
    # the key starting a line, but not a secret: nsswitch.conf, a shell script
    (tmp_path / "nsswitch.conf").write_text('passwd:   files systemd\n'
                                            '  passwd=$(getent passwd "$user")\n')
    found = [s for s in probes.probe_secrets(Local(), [str(tmp_path)])
             if s["file"].startswith(str(tmp_path))]
    assert [(s["file"], s["line"], s["key"]) for s in found] == [
        (str(context), 4, "password"), (str(context), 5, None)]
