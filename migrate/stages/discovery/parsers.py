"""Pure parsers of what the probes read on a source host (unit-tested on sample outputs).

Each takes the text a command printed and returns plain data (JSON-able). Nothing here
connects anywhere; ``probes`` runs the commands.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

# ---- secrets never leave a parser -----------------------------------------------------

SECRET_KEY = r"(?:password|passwd|pwd|secret|token|api_?key)"
_KEY_VALUE = re.compile(
    rf"(?i)(\b[\w.-]*{SECRET_KEY}[\w.-]*\b[\"']?\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|\S+)")
_URL_CREDENTIALS = re.compile(r"(://[^/:@\s]+:)[^@\s/]*@")
_MYSQL_PASSWORD = re.compile(r"(\bmysql(?:dump|admin)?\b[^|;&]*?\s-p)\S+")
REDACTED = "<redacted>"


def redact(text: str) -> str:
    """``text`` with values of password-like keys and URL credentials replaced."""
    text = _URL_CREDENTIALS.sub(rf"\1{REDACTED}@", text)
    text = _KEY_VALUE.sub(rf"\1{REDACTED}", text)
    return _MYSQL_PASSWORD.sub(rf"\1{REDACTED}", text)


# ---- /etc/os-release --------------------------------------------------------------------


def parse_os_release(text: str) -> dict[str, str]:
    """``KEY=value`` lines (shell quoting) -> ``{"id": "debian", "version_id": "12", ...}``."""
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, raw = line.split("=", 1)
        try:
            parts = shlex.split(raw)
        except ValueError:
            parts = [raw.strip("\"'")]
        values[key.strip().lower()] = parts[0] if parts else ""
    wanted = ("id", "version_id", "version_codename", "pretty_name", "name", "id_like")
    return {key: values[key] for key in wanted if key in values}


# ---- hardware ---------------------------------------------------------------------------


def parse_hardware(text: str) -> dict[str, object]:
    """The probe's ``key value`` lines: cpus, mem_kb, root_kb, root_used_kb, hostname."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        if " " in line.strip():
            key, value = line.strip().split(None, 1)
            found[key] = value.strip()
    result: dict[str, object] = {"hostname": found.get("hostname", "")}
    for key in ("cpus", "mem_kb", "root_kb", "root_used_kb"):
        if found.get(key, "").isdigit():
            result[key] = int(found[key])
    return result


# ---- dpkg-query -------------------------------------------------------------------------

DPKG_FORMAT = (r"${db:Status-Abbrev}\t${binary:Package}\t${Version}\t${Architecture}"
               r"\t${Essential}\t${Priority}\n")


def parse_dpkg(text: str) -> list[dict[str, object]]:
    """``dpkg-query -W -f=DPKG_FORMAT`` -> installed packages (status ``ii``/``hi``), sorted;
    ``base_system`` when every Debian system has it (Essential: yes or Priority: required)."""
    packages = []
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) != 6 or parts[0][:2] not in ("ii", "hi"):
            continue
        name = parts[1].split(":")[0] if parts[1].endswith(f":{parts[3]}") else parts[1]
        packages.append({"name": name, "version": parts[2], "arch": parts[3],
                         "base_system": parts[4] == "yes" or parts[5] == "required"})
    return sorted(packages, key=lambda p: p["name"])


# ---- ss -ltnp ---------------------------------------------------------------------------

_SS_USER = re.compile(r'\("([^"]*)",pid=(\d+),fd=\d+\)')


def split_address_port(local: str) -> tuple[str, int] | None:
    """``0.0.0.0:80``, ``[::]:22``, ``*:8080``, ``127.0.0.53%lo:53`` -> (address, port)."""
    address, _, port = local.rpartition(":")
    if not port.isdigit() or not address:
        return None
    address = address.strip("[]").split("%")[0]
    return ("*" if address in ("*", "0.0.0.0", "::") else address), int(port)


def is_loopback(address: str) -> bool:
    if address == "*":
        return False
    try:
        ip = ipaddress.ip_address(address.removeprefix("::ffff:"))
    except ValueError:
        return address == "localhost"
    return ip.is_loopback


def parse_ss(text: str) -> list[dict[str, object]]:
    """``ss -H -ltnp`` -> one entry per (address, port, process), IPv4 and IPv6 merged:
    ``{"address", "port", "process", "pids", "loopback"}``, sorted by port."""
    merged: dict[tuple, dict[str, object]] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[0] != "LISTEN":
            continue
        where = split_address_port(fields[3])
        if where is None:
            continue
        address, port = where
        users = _SS_USER.findall(line)
        process = users[0][0] if users else None
        key = (address, port, process)
        entry = merged.setdefault(key, {"address": address, "port": port, "process": process,
                                        "pids": [], "loopback": is_loopback(address)})
        entry["pids"] = sorted({*entry["pids"], *(int(pid) for _name, pid in users)})  # type: ignore[misc]
    ordered = sorted(merged.values(), key=lambda e: (e["port"], str(e["address"])))
    return _drop_shadowed_wildcards(ordered)


def _drop_shadowed_wildcards(entries: list[dict[str, object]]) -> list[dict[str, object]]:
    """IPv4 ``0.0.0.0:80`` and IPv6 ``[::]:80`` both became ``*:80``: keep one."""
    seen, kept = set(), []
    for entry in entries:
        key = (entry["address"], entry["port"], entry["process"])
        if key not in seen:
            seen.add(key)
            kept.append(entry)
    return kept


def unit_of_cgroup(text: str) -> str | None:
    """``0::/system.slice/nginx.service`` -> ``nginx.service`` (None for sessions, scopes)."""
    for line in text.splitlines():
        path = line.rsplit(":", 1)[-1]
        for part in reversed(path.strip("/").split("/")):
            if part.endswith(".service"):
                return part
    return None


def parse_pid_units(text: str) -> dict[int, str | None]:
    """Lines ``PID<TAB>cgroup line`` -> {pid: unit}."""
    units: dict[int, str | None] = {}
    for line in text.splitlines():
        pid, _, cgroup = line.partition("\t")
        if pid.strip().isdigit():
            units[int(pid)] = unit_of_cgroup(cgroup)
    return units


def parse_running_units(text: str) -> list[str]:
    """``systemctl list-units --type=service --state=running --no-legend --plain`` -> units."""
    return sorted({line.split()[0] for line in text.splitlines()
                   if line.split() and line.split()[0].endswith(".service")})


def parse_dpkg_search(text: str) -> dict[str, list[str]]:
    """``dpkg -S PATH...`` -> path -> the packages that own it (diversion lines skipped)."""
    owners: dict[str, list[str]] = {}
    for line in text.splitlines():
        packages, separator, path = line.rpartition(": ")
        if not separator or line.startswith("diversion ") or not path.startswith("/"):
            continue
        names = [p.strip().split(":")[0] for p in packages.split(",") if p.strip()]
        owners.setdefault(path, [])
        owners[path] += [n for n in names if n not in owners[path]]
    return owners


# ---- systemctl show ---------------------------------------------------------------------

_ARGV = re.compile(r"argv\[\]=(.*?) ; ignore_errors=")


def parse_systemctl_show(text: str) -> list[dict[str, object]]:
    """``systemctl show -p Id -p ... UNIT...`` (blank line between units) -> one dict each:
    ``{"unit", "working_directory", "exec_start", "user", "fragment", "environment_files",
    "active", "enabled"}``."""
    units = []
    for block in re.split(r"\n\s*\n", text.strip()):
        values = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if not values.get("Id"):
            continue
        commands = [c.strip() for c in _ARGV.findall(values.get("ExecStart", ""))]
        files = [f.split(" (")[0] for f in values.get("EnvironmentFiles", "").split("\n") if f]
        units.append({
            "unit": values["Id"],
            "description": values.get("Description", ""),
            "working_directory": values.get("WorkingDirectory") or None,
            "exec_start": [redact(c) for c in commands],
            "user": values.get("User") or "root",
            "fragment": values.get("FragmentPath") or None,
            "environment_files": files,
            "active": values.get("ActiveState"),
            "enabled": values.get("UnitFileState"),
            "drop_ins": values.get("DropInPaths", "").split(),
        })
    return units


# ---- web server document roots ---------------------------------------------------------

_WEB_ROOT = re.compile(r"(?:^|[{;])\s*(?:root|alias|DocumentRoot)\s+[\"']?([^\"';\s]+)",
                       re.IGNORECASE)


def parse_web_roots(text: str) -> list[str]:
    """``root``/``alias`` lines of ``nginx -T`` and ``DocumentRoot`` lines of apache ->
    the absolute directories they serve (with variables left out), sorted."""
    roots = set()
    for line in text.splitlines():
        for match in _WEB_ROOT.finditer(line.split("#", 1)[0]):
            if match[1].startswith("/") and "$" not in match[1]:
                roots.add(match[1].rstrip("/") or "/")
    return sorted(roots)


# ---- du ---------------------------------------------------------------------------------


def parse_du(text: str) -> list[dict[str, object]]:
    """``du -s -k DIR...`` -> ``[{"path", "size_kb"}]`` in the order printed."""
    found = []
    for line in text.splitlines():
        size, _, path = line.partition("\t")
        if size.strip().isdigit() and path.startswith("/"):
            found.append({"path": path.rstrip("/") or "/", "size_kb": int(size)})
    return found


# ---- psql --csv -t ----------------------------------------------------------------------


def parse_psql_csv(text: str) -> list[list[str]]:
    """``psql -X --csv -t -c QUERY`` -> rows of strings (blank lines skipped)."""
    return [row for row in csv.reader(io.StringIO(text)) if row]


def written_tables(before: list[list[str]], after: list[list[str]]) -> list[dict]:
    """Two samples of ``schema, table, writes`` rows (pg_stat_user_tables) -> the tables
    written in between, ``{"table": "schema.table", "writes": n}`` by name. A table new in the
    second sample counts all its writes; one whose counter went down (statistics reset) is
    left out: how much it was written is not known."""
    first = {(row[0], row[1]): int(row[2]) for row in before if len(row) == 3}
    found = []
    for row in after:
        if len(row) != 3:
            continue
        writes = int(row[2]) - first.get((row[0], row[1]), 0)
        if writes > 0:
            found.append({"table": f"{row[0]}.{row[1]}", "writes": writes})
    return sorted(found, key=lambda t: t["table"])


def parse_watch(text: str) -> tuple[dict, dict]:
    """The MariaDB watch's output (both markers in it) -> its two samples, before and after
    (``parse_table_samples``). Split on lines that are exactly ``### before`` and ``### after``:
    no row is (each holds a tab), though CHECKSUM TABLE's starts with a database's name,
    which may start with ``###``."""
    lines = text.splitlines()
    start, middle = lines.index("### before") + 1, lines.index("### after")
    return (parse_table_samples(parse_mysql_batch("\n".join(lines[start:middle]))),
            parse_table_samples(parse_mysql_batch("\n".join(lines[middle + 1:]))))


def parse_table_samples(rows: list[list[str]]) -> dict[tuple[str, str], tuple[str, str]]:
    """The MariaDB watch's rows -> (schema, table) -> (rows, checksum): each ``rows SCHEMA
    TABLE COUNT`` row is followed by CHECKSUM TABLE's ``SCHEMA.TABLE CHECKSUM`` (whose name,
    joined by a dot, is not read: a name may hold one)."""
    samples: dict[tuple[str, str], tuple[str, str]] = {}
    current: tuple[str, str] | None = None
    for row in rows:
        if len(row) == 4 and row[0] == "rows":
            current = (row[1], row[2])
            samples[current] = (row[3], "")
        elif len(row) == 2 and current is not None:
            samples[current] = (samples[current][0], row[1])
            current = None
    return samples


def changed_tables(before: dict[tuple[str, str], tuple[str, str]],
                   after: dict[tuple[str, str], tuple[str, str]]) -> list[dict]:
    """Two samples of MariaDB's tables -> those whose rows or checksum differ (also one only
    in one sample), ``{"schema", "table": "schema.table", "rows_before", "rows_after"}`` by
    name."""
    found = []
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            rows = [_count(sample.get(key)) for sample in (before, after)]
            found.append({"schema": key[0], "table": f"{key[0]}.{key[1]}",
                          "rows_before": rows[0], "rows_after": rows[1]})
    return found


def _count(sample: tuple[str, str] | None) -> int | None:
    return int(sample[0]) if sample and sample[0].isdigit() else None


def split_sections(text: str) -> dict[str, str]:
    """Output in sections, each after a ``### TAG`` line -> {tag: its text}."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("### "):
            current = sections.setdefault(line[4:].strip(), [])
        elif current is not None:
            current.append(line)
    return {tag: "\n".join(lines) for tag, lines in sections.items()}


def parse_pg_array(text: str) -> list[str]:
    """A PostgreSQL text array ``{a,b,"c d"}`` -> ["a", "b", "c d"]."""
    inner = text.strip()
    if not (inner.startswith("{") and inner.endswith("}")) or inner == "{}":
        return []
    return next(csv.reader([inner[1:-1]], quotechar='"', escapechar="\\"))


def parse_acl_grantees(acl: str) -> list[str]:
    """Grantees of an ACL such as ``{=Tc/postgres,postgres=CTc/postgres,app=c/postgres}``;
    ``PUBLIC`` for the empty grantee."""
    grantees = []
    for item in parse_pg_array(acl):
        grantee = item.split("=", 1)[0]
        grantees.append(grantee or "PUBLIC")
    return sorted(set(grantees))


# ---- cron -------------------------------------------------------------------------------

_CRON_ENV = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=")
_FILE_HEADER = re.compile(r"^### (\S+) (package|local)$")


def parse_cron(text: str) -> list[dict[str, object]]:
    """The cron probe's output (``### FILE package|local`` then the file) -> jobs:
    ``{"file", "user", "schedule", "command", "package", "environment"}``; commands redacted,
    of environment lines only the names are kept."""
    jobs: list[dict[str, object]] = []
    current, packaged, env_names = "", False, []
    for line in text.splitlines():
        header = _FILE_HEADER.match(line)
        if header:
            current, packaged, env_names = header[1], header[2] == "package", []
            continue
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or not current:
            continue
        env = _CRON_ENV.match(stripped)
        if env and not stripped.startswith("@"):
            env_names.append(env[1])
            continue
        job = _cron_job(stripped, current)
        if job:
            jobs.append({**job, "file": current, "package": packaged,
                         "environment": list(env_names)})
    return jobs


def _cron_job(line: str, path: str) -> dict[str, object] | None:
    system_table = not path.startswith("/var/spool/cron/")
    fields = line.split()
    if fields[0].startswith("@"):
        schedule, rest = fields[0], fields[1:]
    else:
        if len(fields) < 6:
            return None
        schedule, rest = " ".join(fields[:5]), fields[5:]
    if system_table:
        if len(rest) < 2:
            return None
        user, command = rest[0], " ".join(rest[1:])
    else:
        user, command = path.rsplit("/", 1)[-1], " ".join(rest)
    return {"user": user, "schedule": schedule, "command": redact(command)}


# ---- web server access logs (combined / common format) -----------------------------------

_ACCESS = re.compile(r'^(\S+) \S+ \S+ \[([^\]]+)\] "([^"]*)" (\d{3}) (\S+)')


MONTHS = {name: f"{number:02d}" for number, name in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}


def stamp_key(stamp: str) -> str | None:
    """``31/Oct/2026:23:00:00 +0800`` -> ``2026-10-31T23:00:00`` (the time as the log wrote
    it; sortable, and ten times cheaper than strptime, which matters for years of logs)."""
    month = MONTHS.get(stamp[3:6])
    if month is None or len(stamp) < 20 or stamp[2] != "/" or stamp[6] != "/":
        return None
    return f"{stamp[7:11]}-{month}-{stamp[0:2]}T{stamp[12:20]}"


@dataclass
class AccessSummary:
    """Requests and distinct clients per month, first and last request (ordered by the
    time as the log wrote it: a server's log keeps one offset)."""

    requests: dict[str, int] = field(default_factory=dict)
    clients: dict[str, set[str]] = field(default_factory=dict)
    first: tuple[str, str] | None = None  # (key, stamp)
    last: tuple[str, str] | None = None
    unparsed: int = 0

    def add(self, line: str) -> None:
        match = _ACCESS.match(line)
        key = stamp_key(match[2]) if match else None
        if key is None:
            self.unparsed += bool(line.strip())
            return
        month = key[:7]
        self.requests[month] = self.requests.get(month, 0) + 1
        self.clients.setdefault(month, set()).add(match[1])  # type: ignore[index]
        if self.first is None or key < self.first[0]:
            self.first = (key, match[2])  # type: ignore[index]
        if self.last is None or key > self.last[0]:
            self.last = (key, match[2])  # type: ignore[index]

    def as_dict(self) -> dict[str, object]:
        months = [{"month": m, "requests": self.requests[m],
                   "distinct_clients": len(self.clients[m])} for m in sorted(self.requests)]
        first, last = (_stamp_time(s) for s in (self.first, self.last))
        return {"first_request": first.isoformat() if first else None,
                "last_request": last.isoformat() if last else None,
                "months": months, "unparsed_lines": self.unparsed,
                "monthly_users": monthly_users(months, last)}


def _stamp_time(entry: tuple[str, str] | None) -> datetime | None:
    if entry is None:
        return None
    try:
        return datetime.strptime(entry[1], "%d/%b/%Y:%H:%M:%S %z")
    except ValueError:
        return datetime.fromisoformat(entry[0])


def summarise_access(lines: Iterable[str]) -> AccessSummary:
    summary = AccessSummary()
    for line in lines:
        summary.add(line)
    return summary


def monthly_users(months: list[dict], last: datetime | None) -> dict[str, object] | None:
    """The census figure: distinct clients of the latest complete month (the month before the
    last request's); the last month itself (``partial``) when it is the only one."""
    if not months or last is None:
        return None
    current = last.strftime("%Y-%m")
    complete = [m for m in months if m["month"] < current]
    chosen = complete[-1] if complete else months[-1]
    return {"month": chosen["month"], "distinct_clients": chosen["distinct_clients"],
            "partial": not complete}


# ---- grep output: config mentions and secrets -------------------------------------------


def parse_grep_lines(text: str) -> list[dict[str, object]]:
    """``grep -rIn`` lines ``FILE:LINE:TEXT`` -> ``{"file", "line", "text"}`` (text redacted)."""
    found = []
    for raw in text.splitlines():
        parts = raw.split(":", 2)
        if len(parts) == 3 and parts[1].isdigit() and parts[0].startswith("/"):
            found.append({"file": parts[0], "line": int(parts[1]), "text": redact(parts[2])})
    return found


_ASSIGNED_KEY = re.compile(r"^\s*(?:export\s+)?\$?[\"']?([A-Za-z_][\w.-]*)[\"']?\s*[=:]")


def secret_key_of(text: str) -> str | None:
    """The name a secret is assigned to on a config line (``db_password = ...``, PHP's
    ``$wgDBpassword = ...``, a shell's ``export PGPASSWORD=...`` -> the name); None when the
    line does not assign one."""
    match = _ASSIGNED_KEY.match(text)
    return match[1] if match else None


# ---- unix sockets: services a web server reaches without a TCP port ---------------------

_SOCKET_REFERENCE = re.compile(
    r"(?:\b(?:fastcgi|uwsgi|scgi|grpc)_pass\s+unix:|\bserver\s+unix:|http://unix:"
    r"|\bproxy:unix:)(/[^\s;|:\"']+)", re.IGNORECASE)


def parse_socket_references(text: str) -> list[str]:
    """Web server configuration (``nginx -T``, apache's files) -> the unix sockets it passes
    requests to: nginx ``fastcgi_pass unix:/run/php/php8.2-fpm.sock``, ``uwsgi_pass``,
    ``proxy_pass http://unix:/path:``, upstream ``server unix:``, apache
    ``proxy:unix:/path|fcgi://...``; comments left out, sorted."""
    sockets = set()
    for line in text.splitlines():
        for match in _SOCKET_REFERENCE.finditer(line.split("#", 1)[0]):
            sockets.add(match[1])
    return sorted(sockets)


def parse_ss_unix(text: str) -> dict[str, list[int]]:
    """``ss -H -lxp`` -> listening socket path -> the pids behind it (abstract and unnamed
    sockets left out)."""
    found: dict[str, list[int]] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 5 or fields[1] != "LISTEN" or not fields[4].startswith("/"):
            continue
        pids = sorted({int(pid) for _name, pid in _SS_USER.findall(line)})
        found[fields[4]] = sorted({*found.get(fields[4], []), *pids})
    return found


# ---- modules a runtime loads ------------------------------------------------------------

# Where runtimes read the modules they load: PHP's enabled ini files per SAPI, apache's
# enabled modules, the jars in a Tomcat's own lib folder (CATALINA_BASE's: the package's
# CATALINA_HOME lib comes with it). Each is resolved (a symlink names the
# module's own file) and the packages owning the resolved file are what the target installs.
MODULE_GLOBS = ("/etc/php/*/*/conf.d/*.ini", "/etc/apache2/mods-enabled/*.load",
                "/var/lib/tomcat*/lib/*.jar", "/opt/tomcat*/lib/*.jar")


def runtime_of(path: str) -> str:
    """The runtime a module file belongs to: ``php8.2-fpm``, ``apache2``, ``tomcat10``."""
    parts = path.strip("/").split("/")
    if parts[:2] == ["etc", "php"] and len(parts) > 3:
        return f"php{parts[2]}-{parts[3]}"
    if parts[:2] == ["etc", "apache2"]:
        return "apache2"
    return next((p for p in parts if p.startswith("tomcat")), "other")


def parse_module_links(text: str) -> list[dict[str, str]]:
    """Lines ``FILE<TAB>RESOLVED`` -> ``[{"runtime", "file", "resolved"}]`` by file."""
    found = []
    for line in text.splitlines():
        file, _, resolved = line.partition("\t")
        if file.startswith("/") and resolved.startswith("/"):
            found.append({"runtime": runtime_of(file), "file": file, "resolved": resolved})
    return sorted(found, key=lambda m: m["file"])


# ---- systemd: timers, drop-ins ------------------------------------------------------------


def parse_unit_list(text: str, suffix: str) -> list[str]:
    """``systemctl list-units --no-legend --plain`` (or list-unit-files) -> the unit names
    ending in ``suffix``."""
    return sorted({line.split()[0] for line in text.splitlines()
                   if line.split() and line.split()[0].endswith(suffix)})


def parse_timers(text: str) -> list[dict[str, object]]:
    """``systemctl show -p Id -p Triggers -p FragmentPath -p UnitFileState -p TimersCalendar
    -p TimersMonotonic TIMER...`` -> ``[{"timer", "triggers", "fragment", "enabled",
    "schedule"}]``; the schedule as systemd prints it (``OnCalendar=*-*-* 02:30:00``)."""
    timers = []
    for block in re.split(r"\n\s*\n", text.strip()):
        values: dict[str, str] = {}
        for line in block.splitlines():
            key, _, value = line.partition("=")
            values.setdefault(key, value)
        if not values.get("Id", "").endswith(".timer"):
            continue
        schedule = [s for s in (_timer_spec(values.get("TimersCalendar", "")),
                                _timer_spec(values.get("TimersMonotonic", ""))) if s]
        timers.append({"timer": values["Id"], "triggers": values.get("Triggers", "").split(),
                       "fragment": values.get("FragmentPath") or None,
                       "enabled": values.get("UnitFileState") or None,
                       "wanted_by": values.get("WantedBy", "").split(),
                       "schedule": "; ".join(schedule)})
    return timers


def _timer_spec(value: str) -> str:
    """``{ OnCalendar=*-*-* 02:30:00 ; next_elapse=... }`` -> ``OnCalendar=*-*-* 02:30:00``."""
    return "; ".join(part.split(";")[0].strip(" {}")
                     for part in value.split("}") if part.strip(" {}"))


# ---- Tomcat -------------------------------------------------------------------------------


def parse_listing(text: str) -> list[str]:
    """One absolute path a line -> the paths, sorted (others left out)."""
    return sorted({line for line in text.splitlines() if line.startswith("/")})


# ---- MariaDB / MySQL ------------------------------------------------------------------------

_MYSQL_ESCAPES = {"n": "\n", "t": "\t", "0": "\0", "\\": "\\"}


def parse_mysql_batch(text: str) -> list[list[str]]:
    """``mariadb --batch --skip-column-names`` output -> rows of strings (the client escapes
    tab, newline, NUL and backslash in values; they are unescaped here)."""
    rows = []
    for line in text.splitlines():
        if line:
            rows.append([re.sub(r"\\(.)", lambda m: _MYSQL_ESCAPES.get(m[1], m[0]), value)
                         for value in line.split("\t")])
    return rows


_GRANTEE = re.compile(r"^'((?:[^']|'')*)'@'((?:[^']|'')*)'$")


def parse_grantee(text: str) -> tuple[str, str] | None:
    """``'xmsb'@'192.168.1.5'`` (information_schema's GRANTEE) -> ("xmsb", "192.168.1.5")."""
    match = _GRANTEE.match(text)
    return (match[1].replace("''", "'"), match[2].replace("''", "'")) if match else None


# ---- where configuration names a database server -----------------------------------------

_DATABASE_URL = re.compile(
    r"\bjdbc:(mariadb|mysql|postgresql)://\[?([A-Za-z0-9_.:-]+?)\]?(?::(\d{1,5}))?"
    r"/([A-Za-z0-9_$-]*)", re.IGNORECASE)
_HOST_SETTING = re.compile(
    r"""(?ix)(?:\$wgDBserver|\bDB_HOST\b|\bdb_?host\b|\bdatabase_?host\b|['"]host['"]\s*=>)
    ['"]?\s*[=:,]?\s*(?:=>)?\s*['"]?([A-Za-z0-9_.-]+)""")


def parse_database_references(hits: list[dict[str, object]]) -> list[dict[str, object]]:
    """Configuration lines (grep hits) naming a database server -> ``{"file", "line",
    "engine", "host", "port", "database"}``: JDBC URLs, and settings such as PHP's
    ``$wgDBserver``, ``DB_HOST`` or ``'host' =>`` (engine and port unknown there: None)."""
    found = []
    for hit in hits:
        text = str(hit["text"])
        urls = list(_DATABASE_URL.finditer(text))
        for url in urls:
            found.append({"file": hit["file"], "line": hit["line"],
                          "engine": "mariadb" if url[1].lower() == "mysql" else url[1].lower(),
                          "host": url[2], "port": int(url[3]) if url[3] else None,
                          "database": url[4] or None})
        setting = None if urls else _HOST_SETTING.search(text)
        if setting:
            found.append({"file": hit["file"], "line": hit["line"], "engine": None,
                          "host": setting[1], "port": None, "database": None})
    return found
