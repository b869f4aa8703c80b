"""Probes: each reads one kind of thing on a source host over a checked SSH session and
returns plain data (the parsing is in ``parsers``). A probe that cannot run raises
``ProbeFailed``; ``discover_host`` records that and runs the others (every problem at once).

Probes only read: they never change a source host. Commands that need root go through
``session.as_root`` (``sudo -n`` for a non-root login); PostgreSQL is asked as its own
superuser (``runuser -u postgres`` as root, else ``sudo -n -u postgres``).
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable, Iterable

from migrate.adapters.access import SourceSession
from migrate.core.errors import MigrateError, StageFailed
from migrate.stages.discovery import parsers

# Where department servers keep application data (children of these are candidates).
DATA_ROOTS = ("/srv", "/var/www", "/opt", "/home", "/data")
# Searched for the source's address and for secrets, besides the applications' directories.
CONFIG_ROOTS = ("/etc",)
CONFIG_EXCLUDED_DIRS = ("ssl", "ssh", "alternatives", "apparmor.d", "ca-certificates",
                        "X11", "fonts")
CONFIG_EXCLUDED_FILES = ("shadow*", "gshadow*", "*.dpkg-*", "ld.so.cache")
ACCESS_LOG_GLOBS = ("/var/log/nginx/*access*.log*", "/var/log/apache2/*access*.log*",
                    "/var/log/httpd/*access*log*", "/var/log/tomcat*/localhost_access_log*")
CRON_FILES = "/etc/crontab /etc/cron.d/* /var/spool/cron/crontabs/*"
GREP_LIMIT = 500


class ProbeFailed(StageFailed):
    """A probe could not read what it looks for (the others still run)."""


def _checked(session: SourceSession, command: str, what: str) -> str:
    result = session.run(command)
    if not result.ok:
        detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ProbeFailed(f"{what}: exit {result.status}: {parsers.redact(detail[0])}")
    return result.stdout


def probe_os(session: SourceSession) -> dict:
    text = _checked(session, "cat /etc/os-release || cat /usr/lib/os-release", "os-release")
    return {**parsers.parse_os_release(text),
            "kernel": session.run("uname -r").stdout.strip()}


def probe_hardware(session: SourceSession) -> dict:
    command = ("echo hostname $(hostname); echo cpus $(nproc); "
               "awk '/^MemTotal:/ {print \"mem_kb\", $2}' /proc/meminfo; "
               "df -P -k / | awk 'NR==2 {print \"root_kb\", $2; print \"root_used_kb\", $3}'")
    return parsers.parse_hardware(_checked(session, command, "hardware"))


def probe_packages(session: SourceSession) -> list[dict]:
    command = f"dpkg-query -W -f={shlex.quote(parsers.DPKG_FORMAT)}"
    return parsers.parse_dpkg(_checked(session, command, "dpkg-query"))


def probe_listening(session: SourceSession) -> list[dict]:
    """Listening TCP sockets with the systemd unit of the process behind each."""
    entries = parsers.parse_ss(_checked(session, session.as_root("ss -H -ltnp"), "ss -ltnp"))
    units = units_of_pids(session, [pid for entry in entries
                                    for pid in entry["pids"]])  # type: ignore[attr-defined]
    for entry in entries:
        found = [units.get(pid) for pid in entry["pids"]]  # type: ignore[attr-defined]
        entry["unit"] = next((u for u in found if u), None)
    return entries


def units_of_pids(session: SourceSession, pids: Iterable[int]) -> dict[int, str | None]:
    """The systemd unit of each process (from its cgroup; None for a session's)."""
    wanted = sorted(set(pids))
    if not wanted:
        return {}
    loop = ("for p in " + " ".join(map(str, wanted)) + "; do "
            "printf '%s\\t%s\\n' \"$p\" \"$(grep -m1 '^0::' /proc/$p/cgroup "
            "|| head -n1 /proc/$p/cgroup)\"; done")
    return parsers.parse_pid_units(session.run(session.as_root(loop)).stdout)


WEB_CONFIG = ("{ nginx -T 2>/dev/null; grep -rhiE '^[[:space:]]*(DocumentRoot|SetHandler|"
              "ProxyPass(Match)?)[[:space:]]' /etc/apache2/sites-enabled /etc/apache2/conf-enabled"
              " /etc/apache2/apache2.conf /etc/httpd/conf /etc/httpd/conf.d 2>/dev/null; } || true")


def probe_unix_sockets(session: SourceSession) -> list[dict]:
    """The unix sockets the web servers pass requests to (php-fpm's, a gunicorn's) and the
    unit listening on each: a service with no TCP port that must move with the site."""
    sockets = parsers.parse_socket_references(session.run(session.as_root(WEB_CONFIG)).stdout)
    if not sockets:
        return []
    listening = parsers.parse_ss_unix(_checked(session, session.as_root("ss -H -lxp"),
                                               "ss -lxp"))
    units = units_of_pids(session, [pid for path in sockets
                                    for pid in listening.get(path, [])])
    found = []
    for path in sockets:
        owners = [units.get(pid) for pid in listening.get(path, [])]
        found.append({"socket": path, "listening": path in listening,
                      "unit": next((u for u in owners if u), None)})
    return found


def probe_runtime_modules(session: SourceSession) -> list[dict]:
    """The modules PHP, apache and Tomcat load here (parsers.MODULE_GLOBS), each resolved to
    its own file, with the packages owning that file (none: put there by hand)."""
    command = ("for f in " + " ".join(parsers.MODULE_GLOBS) + "; do [ -e \"$f\" ] && "
               "printf '%s\\t%s\\n' \"$f\" \"$(readlink -f -- \"$f\")\"; done; true")
    modules = parsers.parse_module_links(_checked(session, command, "runtime modules"))
    owners = probe_package_owners(session, [m["resolved"] for m in modules])
    # Debian writes PHP's mods-available/*.ini on install (no package owns them): the
    # shared object their extension= line loads is the package's
    inis = [m["resolved"] for m in modules
            if m["resolved"].endswith(".ini") and m["resolved"] not in owners]
    loads = php_extension_files(session, inis)
    owners.update(probe_package_owners(session, loads.values()))
    return [{**m, **({"loads": loads[m["resolved"]]} if m["resolved"] in loads else {}),
             "packages": owners.get(m["resolved"]) or owners.get(loads.get(m["resolved"], ""),
                                                               [])}
            for m in modules]


PHP_EXTENSION_LINE = (r"s/^[[:space:]]*(zend_)?extension[[:space:]]*=[[:space:]]*\"?"
                      r"([^\";[:space:]]+).*/\2/p")


def php_extension_files(session: SourceSession, inis: list[str]) -> dict[str, str]:
    """PHP ini file -> the shared object its ``extension=`` (or ``zend_extension=``) line
    loads: an absolute path, or a name looked up in PHP's extension folders."""
    if not inis:
        return {}
    command = ("for f in " + " ".join(shlex.quote(i) for i in sorted(set(inis))) + "; do "
               f"e=$(sed -n -E {shlex.quote(PHP_EXTENSION_LINE)} \"$f\" | head -n 1); "
               "[ -n \"$e\" ] || continue; case $e in /*) p=$e ;; "
               "*) p=$(ls -1d /usr/lib/php/*/\"${e%.so}.so\" 2>/dev/null | head -n 1) ;; esac; "
               "[ -n \"$p\" ] && printf '%s\\t%s\\n' \"$f\" \"$p\"; done; true")
    found = parsers.parse_module_links(session.run(command).stdout)
    return {m["file"]: m["resolved"] for m in found}


TIMER_PROPERTIES = ("Id", "Triggers", "FragmentPath", "UnitFileState", "TimersCalendar",
                    "TimersMonotonic", "WantedBy")


def probe_timers(session: SourceSession) -> list[dict]:
    """Every systemd timer, the service it triggers (its command, user, files) and whether
    a package brought it (``local``: no package owns the timer's file)."""
    listed = _checked(session, "systemctl list-units --type=timer --all --no-legend --plain",
                      "systemctl list-units --type=timer")
    names = parsers.parse_unit_list(listed, ".timer")
    if not names:
        return []
    command = ("systemctl show " + " ".join(f"-p {p}" for p in TIMER_PROPERTIES) + " -- "
               + " ".join(shlex.quote(n) for n in names))
    timers = parsers.parse_timers(_checked(session, command, "systemctl show (timers)"))
    services = {u["unit"]: u for u in probe_units(
        session, [s for t in timers for s in t["triggers"]])}  # type: ignore[attr-defined]
    owners = probe_package_owners(session, [str(t["fragment"]) for t in timers
                                            if t["fragment"]])
    for timer in timers:
        timer["local"] = not owners.get(str(timer["fragment"]))
        timer["services"] = [services[s] for s in timer["triggers"]  # type: ignore[attr-defined]
                             if s in services]
    return timers


TOMCAT_BASES = ("/var/lib/tomcat*", "/opt/tomcat*", "/usr/local/tomcat*", "/srv/tomcat*")
TOMCAT_CONTEXTS = "/etc/tomcat*/Catalina/*/*.xml"


def probe_tomcat(session: SourceSession) -> dict | None:
    """Tomcat's deployed applications (``webapps``), context files and ``lib`` entries that no
    package brought: what someone put there by hand. None when there is no Tomcat."""
    bases = parsers.parse_listing(session.run(
        "for d in " + " ".join(TOMCAT_BASES) + "; do [ -d \"$d/webapps\" ] && echo \"$d\";"
        " done; true").stdout)
    if not bases:
        return None
    command = session.as_root(
        "for f in " + " ".join(f"{shlex.quote(b)}/webapps/* {shlex.quote(b)}/lib/*"
                               for b in bases)
        + f" {TOMCAT_CONTEXTS}; do if [ -d \"$f\" ] && [ ! -L \"$f\" ]; then echo \"$f/\";"
        " elif [ -e \"$f\" ] || [ -L \"$f\" ]; then echo \"$f\"; fi; done; true")
    entries = parsers.parse_listing(_checked(session, command, "tomcat"))
    owned = probe_package_owners(session, [e.rstrip("/") for e in entries])
    local = [e for e in entries if e.rstrip("/") not in owned]
    return {"bases": bases,
            "webapps": [e for e in local if "/webapps/" in e],
            "libraries": [e for e in local if any(e.startswith(f"{b}/lib/") for b in bases)],
            "contexts": [e for e in local if e.startswith("/etc/")]}


def probe_package_owners(session: SourceSession, paths: Iterable[str]) -> dict[str, list[str]]:
    """The Debian packages that own these paths (a path no package owns is left out)."""
    names = sorted({p for p in paths if p and p.startswith("/")})
    if not names:
        return {}
    command = "dpkg -S -- " + " ".join(shlex.quote(n) for n in names) + " 2>/dev/null"
    return parsers.parse_dpkg_search(session.run(command).stdout)  # exit 1: some unowned


def probe_running_units(session: SourceSession) -> list[str]:
    """Every running service unit (also those that listen on no TCP port: php-fpm behind a
    unix socket, queue workers), for what the target must run besides the declared ones."""
    command = "systemctl list-units --type=service --state=running --no-legend --plain"
    text = _checked(session, command, "systemctl list-units")
    return parsers.parse_running_units(text)


def probe_units(session: SourceSession, units: Iterable[str]) -> list[dict]:
    names = sorted(set(units))
    if not names:
        return []
    properties = ("Id", "Description", "WorkingDirectory", "ExecStart", "User",
                  "FragmentPath", "EnvironmentFiles", "ActiveState", "UnitFileState",
                  "DropInPaths")
    command = ("systemctl show " + " ".join(f"-p {p}" for p in properties) + " -- "
               + " ".join(shlex.quote(n) for n in names))
    return parsers.parse_systemctl_show(_checked(session, command, "systemctl show"))


APACHE_CONFIG = ("/etc/apache2/sites-enabled /etc/apache2/apache2.conf /etc/httpd/conf "
                 "/etc/httpd/conf.d")
PACKAGE_TREES = ("/usr", "/bin", "/sbin", "/lib", "/etc", "/proc", "/sys", "/dev", "/run")


def probe_web_roots(session: SourceSession) -> list[str]:
    """The directories the web servers serve (nginx ``root``/``alias``, apache
    ``DocumentRoot``), symlinks resolved; package trees such as /usr/share are left out."""
    command = ("{ nginx -T 2>/dev/null; grep -rhiE '^[[:space:]]*DocumentRoot[[:space:]]' "
               f"{APACHE_CONFIG} 2>/dev/null; }} || true")
    roots = parsers.parse_web_roots(session.run(session.as_root(command)).stdout)
    if not roots:
        return []
    resolve = "for d in " + " ".join(shlex.quote(r) for r in roots) + \
        "; do [ -d \"$d\" ] && readlink -f -- \"$d\"; done"
    resolved = session.run(resolve).stdout.split("\n")
    return sorted({d for d in resolved if d.startswith("/") and d != "/"
                   and not d.startswith(tuple(f"{tree}/" for tree in PACKAGE_TREES))})


def probe_data_directories(session: SourceSession, extra: Iterable[str] = ()) -> list[dict]:
    """Sizes of the application data candidates: children of DATA_ROOTS and ``extra``. One
    ``du`` per directory: given a folder and one inside it, a single ``du`` counts the inner
    one's files once, under the outer, and prints nothing for it."""
    candidates = " ".join([*(f"{root}/*" for root in DATA_ROOTS),
                           *(shlex.quote(d) for d in sorted(set(extra)))])
    command = (f"for d in {candidates}; do [ -d \"$d\" ] && [ ! -L \"$d\" ] && echo \"$d\"; "
               "done | sort -u | xargs -r -d '\\n' -n 1 du -s -k --one-file-system")
    return parsers.parse_du(_checked(session, session.as_root(command), "du"))


# ---- PostgreSQL ----------------------------------------------------------------------------

DATABASES_SQL = ("SELECT d.datname, pg_get_userbyid(d.datdba), pg_database_size(d.datname), "
                 "pg_encoding_to_char(d.encoding), coalesce(d.datacl::text, ''), d.datallowconn "
                 "FROM pg_database d WHERE NOT d.datistemplate ORDER BY 1")
ROLES_SQL = ("SELECT r.rolname, r.rolcanlogin, r.rolsuper, "
             "ARRAY(SELECT b.rolname FROM pg_auth_members m JOIN pg_roles b ON m.roleid = b.oid"
             " WHERE m.member = r.oid ORDER BY 1)::text "
             "FROM pg_roles r WHERE r.rolname !~ '^pg_' ORDER BY 1")
SETTINGS_SQL = ("SELECT name, setting FROM pg_settings WHERE name IN "
                "('server_version', 'data_directory', 'port', 'listen_addresses', "
                "'wal_level') ORDER BY 1")
OBJECT_ROLES_SQL = ("SELECT 'owner', tableowner FROM pg_tables WHERE schemaname NOT IN "
                    "('pg_catalog', 'information_schema') "
                    "UNION SELECT 'granted', grantee FROM information_schema.role_table_grants"
                    " WHERE table_schema NOT IN ('pg_catalog', 'information_schema') "
                    "UNION SELECT 'schema_owner', pg_get_userbyid(nspowner) FROM pg_namespace "
                    "WHERE nspname NOT LIKE 'pg_%' AND nspname <> 'information_schema' "
                    "ORDER BY 1, 2")
SYSTEM_DATABASES = ("postgres",)
# Each table's writes since the statistics were reset, sampled twice WATCH_S apart while the
# application serves: the tables it writes then are proposed as volatile_tables.
WRITES_SQL = ("SELECT schemaname, relname, n_tup_ins + n_tup_upd + n_tup_del "
              "FROM pg_stat_user_tables ORDER BY 1, 2")
WATCH_S = 10


class Window:
    """The one wait of a host's database watches. Each engine takes its first sample and
    hands ``watching`` what takes its second; ``close`` waits once, until ``watch_s`` seconds
    after the last first sample, then takes every second sample: PostgreSQL and MariaDB on
    one host are watched in one window, not one after the other. No command sleeps on the
    host, so none needs a longer read timeout than COMMAND_TIMEOUT, whatever the window."""

    def __init__(self, watch_s: int) -> None:
        self.watch_s = watch_s
        self.pending: dict[str, Callable[[], None]] = {}
        self.first_sampled = 0.0

    def watching(self, engine: str, second: Callable[[], None]) -> None:
        self.pending[engine] = second
        self.first_sampled = time.monotonic()

    def close(self) -> dict[str, MigrateError]:
        """Wait out the window, then take every second sample: the engines whose second
        sample failed, with the error (the others' are taken all the same)."""
        if not self.pending:
            return {}
        time.sleep(max(0.0, self.first_sampled + self.watch_s - time.monotonic()))
        failed: dict[str, MigrateError] = {}
        for engine, second in self.pending.items():
            try:
                second()
            except MigrateError as error:
                failed[engine] = error
        self.pending.clear()
        return failed


def watched_alone(read: Callable[[SourceSession, Window], dict | None],
                  session: SourceSession, watch_s: int) -> dict | None:
    """One engine's ``read`` in a window of its own, closed before it returns."""
    window = Window(watch_s)
    server = read(session, window)
    for error in window.close().values():
        raise error
    return server


SCRIPT_END = "MIGRATE_SQL_END"
# A client (or a server package whose unit is disabled) without a running server is not an
# error: such a host has no PostgreSQL databases. The server's processes are all "postgres".
POSTGRESQL_SERVER_RUNNING = "grep -qsx postgres /proc/[0-9]*/comm"


def psql_command(session: SourceSession, script: str) -> str:
    """One psql run of ``script`` (on its stdin) as the server's superuser: ``runuser`` as
    root, else ``sudo -n -u postgres``; CSV rows, no headers, stops at the first error."""
    psql = "psql -X -q --csv -t -v ON_ERROR_STOP=1 -d postgres"
    runner = "runuser -u postgres --" if session.is_root else "sudo -n -u postgres"
    return f"cd / && {runner} {psql} <<'{SCRIPT_END}'\n{script}\n{SCRIPT_END}"


def psql_script(sections: list[tuple[str, str | None, str]]) -> str:
    """(tag, database or None, query) -> a script printing ``### tag`` before each result."""
    lines = []
    for tag, database, sql in sections:
        if database is not None:
            lines.append("\\c " + "'" + database.replace("'", "''") + "'")
        lines += [f"\\echo '### {tag}'", f"{sql};"]
    return "\n".join(lines)


def probe_postgresql(session: SourceSession, watch_s: int = WATCH_S) -> dict | None:
    """``read_postgresql`` watching ``watch_s`` seconds on its own."""
    return watched_alone(read_postgresql, session, watch_s)


def read_postgresql(session: SourceSession, window: Window) -> dict | None:
    """Databases (size, owner, roles granted on it and on its tables, the tables written
    during the ``window``, whose close takes the second sample: none watched when its
    watch_s is 0), roles and settings; None when no PostgreSQL server runs here (psql
    installed or not). Two psql runs, whatever the number of databases: the cluster, then
    every database's tables with the first sample; a third for the second sample."""
    present = session.run("command -v psql >/dev/null && getent passwd postgres >/dev/null")
    if not present.ok or not session.run(POSTGRESQL_SERVER_RUNNING).ok:
        return None
    cluster = _psql_sections(session, [("settings", None, SETTINGS_SQL),
                                       ("roles", None, ROLES_SQL),
                                       ("databases", None, DATABASES_SQL)], "cluster")
    settings = dict(cluster.get("settings", []))
    roles = [{"name": name, "login": login == "t", "superuser": superuser == "t",
              "member_of": parsers.parse_pg_array(member_of)}
             for name, login, superuser, member_of in cluster.get("roles", [])]
    databases = [{"name": name, "owner": owner, "size_bytes": int(size), "encoding": encoding,
                  "connect_grantees": parsers.parse_acl_grantees(acl) if acl else [],
                  "accepts_connections": allowed == "t", "system": name in SYSTEM_DATABASES}
                 for name, owner, size, encoding, acl, allowed in cluster.get("databases", [])]
    mine = [d for d in databases if not d["system"] and d["accepts_connections"]]
    if mine:
        watched = window.watch_s > 0
        objects = _psql_sections(session, [*((f"objects {i}", d["name"], OBJECT_ROLES_SQL)
                                             for i, d in enumerate(mine)),
                                           *(writes_sections(mine, "before") if watched
                                             else [])], "tables")
        for index, database in enumerate(mine):
            database.update(_object_roles(objects.get(f"objects {index}", [])))
        if watched:
            window.watching("postgresql", lambda: _watched_writes(session, mine, objects,
                                                                  window.watch_s))
    return {"engine": "postgresql", "version": settings.get("server_version"),
            "settings": settings, "databases": databases, "roles": roles}


def writes_sections(databases: list[dict], sample: str) -> list[tuple[str, str | None, str]]:
    """Every database's write counters, as the ``before`` or the ``after`` sample."""
    return [(f"writes {sample} {i}", d["name"], WRITES_SQL) for i, d in enumerate(databases)]


def _watched_writes(session: SourceSession, databases: list[dict],
                    before: dict[str, list[list[str]]], watch_s: int) -> None:
    after = _psql_sections(session, writes_sections(databases, "after"), "writes")
    for index, database in enumerate(databases):
        database.update(_written_tables({**before, **after}, index, watch_s))


def _written_tables(sections: dict[str, list[list[str]]], index: int, watch_s: int) -> dict:
    if f"writes after {index}" not in sections:
        return {}
    return {"watched_s": watch_s,
            "written_while_watched": parsers.written_tables(
                sections.get(f"writes before {index}", []), sections[f"writes after {index}"])}


def _object_roles(rows: list[list[str]]) -> dict:
    kinds: dict[str, list[str]] = {"owner": [], "granted": [], "schema_owner": []}
    for kind, role in rows:
        kinds.setdefault(kind, []).append(role)
    return {"table_owners": kinds["owner"], "table_grantees": kinds["granted"],
            "schema_owners": kinds["schema_owner"]}


def _psql_sections(session: SourceSession, sections: list[tuple[str, str | None, str]],
                   what: str) -> dict[str, list[list[str]]]:
    text = _checked(session, psql_command(session, psql_script(sections)), f"psql ({what})")
    return {tag: parsers.parse_psql_csv(body)
            for tag, body in parsers.split_sections(text).items()}


# ---- MariaDB / MySQL ---------------------------------------------------------------------

MYSQL_SETTINGS_SQL = ("SHOW GLOBAL VARIABLES WHERE Variable_name IN ('version', 'datadir', "
                      "'port', 'bind_address', 'log_bin', 'binlog_format', 'server_id', "
                      "'gtid_strict_mode', 'gtid_mode', 'socket')")
MYSQL_DATABASES_SQL = (
    "SELECT s.schema_name, COALESCE(SUM(t.data_length + t.index_length), 0), "
    "s.default_character_set_name, COUNT(t.table_name), "
    "COALESCE(SUM(t.engine IS NOT NULL AND t.engine <> 'InnoDB'), 0) "
    "FROM information_schema.schemata s LEFT JOIN information_schema.tables t "
    "ON t.table_schema = s.schema_name AND t.table_type = 'BASE TABLE' "
    "GROUP BY s.schema_name, s.default_character_set_name ORDER BY 1")
# the password hashes are never selected: users move with them, discovery only names them
MYSQL_USERS_SQL = "SELECT User, Host, plugin FROM mysql.user ORDER BY 1, 2"
MYSQL_GRANTS_SQL = ("SELECT grantee, table_schema, privilege_type "
                    "FROM information_schema.schema_privileges ORDER BY 1, 2, 3")
MYSQL_GLOBAL_GRANTS_SQL = ("SELECT grantee, privilege_type FROM information_schema.user_privileges"
                           " ORDER BY 1, 2")
MYSQL_SYSTEM_DATABASES = ("information_schema", "mysql", "performance_schema", "sys")
MYSQL_CLIENTS = ("mariadb", "mysql")
# MariaDB counts no writes per table (performance_schema is off as Debian installs it): each
# table's rows and CHECKSUM TABLE are read before and after WATCH_S seconds instead, and the
# tables that changed are proposed as volatile_tables. The server itself makes the statements
# from information_schema, a name as a QUOTE() literal and a backtick identifier: no name read
# from the host is ever part of a command line or of SQL text written here.
MYSQL_WATCH_STATEMENTS_SQL = (
    "SELECT CONCAT('SELECT ''rows'', ', QUOTE(table_schema), ', ', QUOTE(table_name), "
    "', COUNT(*) FROM ', named, '; CHECKSUM TABLE ', named, ';') "
    "FROM (SELECT table_schema, table_name, CONCAT('`', REPLACE(table_schema, '`', '``'), "
    "'`.`', REPLACE(table_name, '`', '``'), '`') AS named FROM information_schema.tables "
    "WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ("
    + ", ".join(f"'{name}'" for name in MYSQL_SYSTEM_DATABASES)
    + ")) AS t ORDER BY table_schema, table_name")
# Autocommit reads, each its own snapshot; read-only; the made statements' QUOTE() literals
# read as MariaDB's default sql_mode reads them (whatever the server's is set to).
MYSQL_WATCH_SESSION = ("SET SESSION sql_mode = ''; SET SESSION TRANSACTION READ ONLY; "
                       "SET SESSION lock_wait_timeout = 30;")


def mysql_command(session: SourceSession, script: str) -> str:
    """One run of the server's client as root (the unix socket's own authentication, as
    Debian sets MariaDB up), ``script`` on its stdin; tab-separated rows, no headers."""
    client = ("$(command -v mariadb || command -v mysql) --batch --skip-column-names "
              "--default-character-set=utf8mb4")
    return session.as_root(f"cd / && {client} <<'{SCRIPT_END}'\n{script}\n{SCRIPT_END}")


def mysql_sample_command(session: SourceSession, sample: str) -> str:
    """Every table's rows and checksum under ``### before`` (or ``after``, the ``sample``):
    the list of statements the server makes, run by a second client (the first prints them
    raw: they are SQL)."""
    client = ("$(command -v mariadb || command -v mysql) --batch --skip-column-names "
              "--default-character-set=utf8mb4")
    once = (f"printf '%s\\n' {shlex.quote(MYSQL_WATCH_SESSION)} \"SELECT '### {sample}';\" "
            "\"$s\"")
    return session.as_root(
        f"cd / && s=$({client} --raw <<'{SCRIPT_END}'\n{MYSQL_WATCH_STATEMENTS_SQL};\n"
        f"{SCRIPT_END}\n) && {once} | {client}")


def _mysql_sample(session: SourceSession, sample: str) -> str:
    text = _checked(session, mysql_sample_command(session, sample), "mariadb (watch)")
    if f"### {sample}" not in text.splitlines():
        raise ProbeFailed(f"mariadb (watch): its output holds no {sample} sample")
    return text


def watched_mariadb_tables(session: SourceSession, databases: list[dict],
                           window: Window) -> None:
    """Each database's tables whose rows or checksum changed during the ``window`` (the
    first sample now, the second when it closes), in ``written_while_watched`` with
    ``watched_s`` (PostgreSQL's shape); nothing when its watch_s is 0. The server makes the
    statements again for the second sample: a table made or dropped meanwhile is changed."""
    watched = [d for d in databases if not d["system"]]
    if window.watch_s <= 0 or not watched:
        return
    before = _mysql_sample(session, "before")

    def second() -> None:
        text = f"{before}\n{_mysql_sample(session, 'after')}"
        changed = parsers.changed_tables(*parsers.parse_watch(text))
        for database in watched:
            database["watched_s"] = window.watch_s
            database["written_while_watched"] = [
                {key: value for key, value in t.items() if key != "schema"}
                for t in changed if t["schema"] == database["name"]]

    window.watching("mariadb", second)


def probe_mariadb(session: SourceSession, watch_s: int = WATCH_S) -> dict | None:
    """``read_mariadb`` watching ``watch_s`` seconds on its own."""
    return watched_alone(read_mariadb, session, watch_s)


def read_mariadb(session: SourceSession, window: Window) -> dict | None:
    """MariaDB's (or MySQL's) databases with sizes, table counts and how many tables are not
    InnoDB (a dump is consistent only for InnoDB's), users (never their password hashes),
    who is granted what on each database, the tables that changed during the ``window``
    (none watched when its watch_s is 0), and settings; None when no server runs here."""
    present = session.run("command -v mariadb >/dev/null || command -v mysql >/dev/null")
    if not present.ok:
        return None
    queries = [("settings", MYSQL_SETTINGS_SQL), ("databases", MYSQL_DATABASES_SQL),
               ("users", MYSQL_USERS_SQL), ("grants", MYSQL_GRANTS_SQL),
               ("global", MYSQL_GLOBAL_GRANTS_SQL)]
    script = "\n".join(f"SELECT '### {tag}';\n{sql};" for tag, sql in queries)
    text = _checked(session, mysql_command(session, script), "mariadb")
    sections = {tag: parsers.parse_mysql_batch(body)
                for tag, body in parsers.split_sections(text).items()}
    settings = {row[0]: row[1] for row in sections.get("settings", []) if len(row) == 2}
    grants = _mysql_grants(sections.get("grants", []))
    databases = [{"name": name, "size_bytes": int(size), "encoding": charset,
                  "tables": int(tables), "non_innodb_tables": int(other),
                  "system": name in MYSQL_SYSTEM_DATABASES, "grants": grants.get(name, [])}
                 for name, size, charset, tables, other in sections.get("databases", [])]
    users = [{"user": user, "host": host, "plugin": plugin,
              "global_privileges": _global_privileges(sections.get("global", []), user, host)}
             for user, host, plugin in sections.get("users", [])]
    watched_mariadb_tables(session, databases, window)
    return {"engine": "mariadb", "version": settings.get("version"), "settings": settings,
            "databases": databases, "users": users}


def _mysql_grants(rows: list[list[str]]) -> dict[str, list[dict]]:
    """schema_privileges rows -> database -> ``[{"user", "host", "privileges"}]``."""
    found: dict[str, dict[tuple[str, str], list[str]]] = {}
    for grantee, schema, privilege in (r for r in rows if len(r) == 3):
        account = parsers.parse_grantee(grantee)
        if account is not None:
            found.setdefault(schema, {}).setdefault(account, []).append(privilege)
    return {schema: [{"user": user, "host": host, "privileges": sorted(privileges)}
                     for (user, host), privileges in sorted(accounts.items())]
            for schema, accounts in found.items()}


def _global_privileges(rows: list[list[str]], user: str, host: str) -> list[str]:
    return sorted({privilege for grantee, privilege in (r for r in rows if len(r) == 2)
                   if parsers.parse_grantee(grantee) == (user, host)
                   and privilege != "USAGE"})


# ---- cron, access logs, configuration ---------------------------------------------------------


def probe_cron(session: SourceSession) -> list[dict]:
    command = (f"for f in {CRON_FILES}; do [ -f \"$f\" ] || continue; "
               "if dpkg-query -S \"$f\" >/dev/null 2>&1; then o=package; else o=local; fi; "
               "echo \"### $f $o\"; cat \"$f\"; echo; done")
    return parsers.parse_cron(_checked(session, session.as_root(command), "cron"))


def probe_web_access(session: SourceSession) -> dict | None:
    """Observed use from nginx/apache access logs (rotated and gzipped ones too); None when
    there are none. The logs are read as a stream and summarised here, line by line."""
    listing = session.run(session.as_root(
        "ls -1d " + " ".join(ACCESS_LOG_GLOBS) + " 2>/dev/null || true")).stdout
    files = sorted(f for f in listing.split("\n") if f.startswith("/"))
    if not files:
        return None
    command = session.as_root("zcat -f -- " + " ".join(shlex.quote(f) for f in files))
    summary = parsers.summarise_access(session.stream_lines(command))
    return {"files": files, **summary.as_dict()}


def _grep(session: SourceSession, pattern_args: str, roots: Iterable[str]) -> list[dict]:
    excluded = " ".join([*(f"--exclude-dir={d}" for d in CONFIG_EXCLUDED_DIRS),
                         *(f"--exclude={shlex.quote(f)}" for f in CONFIG_EXCLUDED_FILES)])
    places = " ".join(shlex.quote(r) for r in sorted(set(roots)))
    command = (f"grep -rIns {excluded} {pattern_args} -- {places} | head -n {GREP_LIMIT} "
               # cut every assigned value on the host itself: secrets never leave it
               "| sed -E 's#^([^:]*:[0-9]+:[^=:]*[=:]).*#\\1 <cut>#'")
    result = session.run(session.as_root(command))
    if result.status not in (0, 1):
        raise ProbeFailed(f"grep: exit {result.status}")
    return parsers.parse_grep_lines(result.stdout)


def probe_address_mentions(session: SourceSession, addresses: Iterable[str],
                           directories: Iterable[str]) -> list[dict]:
    """Configuration lines that name one of the system's source addresses (this host's or
    another's: a web server's settings name its database host), candidates for rewrites.
    Whole words only: 192.168.1.1 is not found in 192.168.1.10."""
    pattern = "-F -w " + " ".join(f"-e {shlex.quote(a)}" for a in sorted(set(addresses)))
    return _grep_raw(session, pattern, [*CONFIG_ROOTS, *directories])


def _grep_raw(session: SourceSession, pattern_args: str, roots: Iterable[str]) -> list[dict]:
    """Like ``_grep`` but keeping the line (values redacted on the host by sed first)."""
    excluded = " ".join([*(f"--exclude-dir={d}" for d in CONFIG_EXCLUDED_DIRS),
                         *(f"--exclude={shlex.quote(f)}" for f in CONFIG_EXCLUDED_FILES)])
    places = " ".join(shlex.quote(r) for r in sorted(set(roots)))
    redact_on_host = ("sed -E -e 's#(://[^/:@ ]+:)[^@ /]*@#\\1<redacted>@#g' "
                      "-e 's#((password|passwd|pwd|secret|token|api_?key)[A-Za-z0-9_.-]*"
                      "[\"'\"'\"']?[[:space:]]*[=:][[:space:]]*).*#\\1<redacted>#I'")
    command = (f"grep -rIns {excluded} {pattern_args} -- {places} | head -n {GREP_LIMIT} "
               f"| {redact_on_host}")
    result = session.run(session.as_root(command))
    if result.status not in (0, 1):
        raise ProbeFailed(f"grep: exit {result.status}")
    return parsers.parse_grep_lines(result.stdout)


DATABASE_REFERENCE_PATTERNS = (r"jdbc:(mariadb|mysql|postgresql)://",
                               r"(\$wgDBserver|DB_HOST|db_?host|database_?host)[\"']?[[:space:]]*[=:,]",
                               r"[\"']host[\"'][[:space:]]*=>")


def probe_database_references(session: SourceSession, directories: Iterable[str]) -> list[dict]:
    """Configuration naming a database server: JDBC URLs (engine, host, port, database) and
    host settings (PHP's ``$wgDBserver``, ``DB_HOST``, ``'host' =>``), values of secrets cut
    on the host first."""
    pattern = "-E -i " + " ".join(f"-e {shlex.quote(p)}" for p in DATABASE_REFERENCE_PATTERNS)
    return parsers.parse_database_references(
        _grep_raw(session, pattern, [*CONFIG_ROOTS, *directories]))


SECRET_PATTERN = (r"^[[:space:]]*[^#;[:space:]][^=:]*(password|passwd|pwd|secret|token|"
                  r"api_?key)[^=:]*[=:][[:space:]]*[^[:space:]]")
DSN_PATTERN = r"://[^/:@[:space:]]+:[^@[:space:]/]+@"
# XML: an attribute starting its line (Tomcat's Resource ``password="..."``), a setting named
# like a secret (``<Parameter name="jdbc.password" value="..."/>``); a quoted value only, so
# that ``passwd: files`` (nsswitch) or a shell's ``passwd=$(getent ...)`` are not taken
XML_SECRET_PATTERNS = (r"^[[:space:]]*(password|passwd|pwd|secret|token|api_?key)[A-Za-z_.-]*"
                       r"[[:space:]]*=[[:space:]]*[\"']",
                       r"name=[\"'][^\"']*(password|passwd|pwd|secret|token|api_?key)[^\"']*"
                       r"[\"'][[:space:]]+value=")


def probe_secrets(session: SourceSession, directories: Iterable[str]) -> list[dict]:
    """Where configuration holds a secret (file, line, key); the values are cut on the
    host and never read."""
    pattern = " ".join(["-E -i", *(f"-e {shlex.quote(p)}" for p in
                                   (SECRET_PATTERN, DSN_PATTERN, *XML_SECRET_PATTERNS))])
    found = []
    for hit in _grep(session, pattern, [*CONFIG_ROOTS, *directories]):
        key = parsers.secret_key_of(str(hit["text"]))
        found.append({"file": hit["file"], "line": hit["line"], "key": key})
    return found
