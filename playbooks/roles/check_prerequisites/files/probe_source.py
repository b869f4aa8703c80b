"""probe_source.py SPEC: what check_prerequisites needs of one source host, in one round trip.

SPEC is JSON: {"system": ID, "where": "web1 (192.0.2.1)", "trees": [path...],
"configuration": [path...], "rewrites": [path...], "databases": [{"name", "user", "engine",
"method"}...]}. Standard input holds each database's password, one line each, in SPEC's order
(never an argument: arguments are seen by every user of the host). Prints one JSON object:
the host's clock, every problem found (all of them, not the first), the bytes that move from
each place ("PATH=BYTES") and the PostgreSQL major version (0 without PostgreSQL databases)
and the MariaDB server's [major, minor] ([] without MariaDB databases). A database of engine
"mariadb" is read with Debian's mariadb client as root (unix socket); one planned
"binlog_replication" needs the server's binlog (ROW), a server_id and networking on
127.0.0.1 (where the replication tunnel reaches it). Changes nothing.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time

POSTGRES = ["runuser", "-u", "postgres", "--", "psql", "-XAt", "-v", "ON_ERROR_STOP=1",
            "-d", "postgres"]


def run(argv: list[str], stdin: str = "", env: dict | None = None) -> tuple[int, str, str]:
    try:
        done = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env,
                              check=False)
    except FileNotFoundError:
        return 127, "", f"{argv[0]} is not installed"
    return done.returncode, done.stdout.strip(), done.stderr.strip()


def tree_sizes(trees: list[str], where: str, problems: list[str]) -> list[str]:
    needs = []
    for tree in trees:
        if not os.path.isdir(tree):
            problems.append(f"source path {tree} does not exist (or is not a directory) "
                            f"on {where}")
            continue
        rc, out, err = run(["du", "-sb", "--", tree])
        if rc != 0:
            problems.append(f"cannot read the size of {tree} on {where}: {err}")
            continue
        needs.append(f"{tree}={out.split()[0]}")
    return needs


def check_configuration(paths: list[str], rewrites: list[str], where: str,
                        problems: list[str]) -> None:
    for path in dict.fromkeys(paths + rewrites):
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            problems.append(f"configuration path {path} does not exist on {where}")
            continue
        if path in rewrites and not stat.S_ISREG(mode):
            problems.append(f"configuration path {path} does not exist as a regular file "
                            f"(a rewrite needs one) on {where}")


def postgres_major(where: str, problems: list[str]) -> int:
    rc, out, err = run([*POSTGRES, "-c", "SHOW server_version_num"])
    if rc != 0 or not out.isdigit():
        problems.append(f"PostgreSQL on {where} does not answer: {err or out}")
        return 0
    return int(out) // 10000


def database_sizes(databases: list[dict], where: str, problems: list[str]) -> list[str]:
    needs = []
    for database in databases:
        rc, out, err = run([*POSTGRES, "-v", f"db={database['name']}"],
                           "SELECT pg_database_size(:'db');")
        if rc != 0 or not out.isdigit():
            problems.append(f"database {database['name']} on {where} cannot be read: "
                            f"{err or out}")
            continue
        needs.append(f"/var/lib/postgresql={out}")
    return needs


def dbname(name: str) -> str:
    """A database name as a libpq connection string: psql -d reads a name holding "=" as
    one, and its host would then receive the password."""
    return "dbname='" + name.replace("\\", "\\\\").replace("'", "\\'") + "'"


def check_logins(databases: list[dict], passwords: list[str], where: str,
                 problems: list[str]) -> None:
    """Each application role logs in over TCP with the manifest's password, as the app does."""
    for database, password in zip(databases, passwords, strict=True):
        rc, _, err = run(["psql", "-XAtw", "-h", "127.0.0.1", "-U", database["user"],
                          "-d", dbname(database["name"]), "-c", "SELECT 1"],
                         env={**os.environ, "PGPASSWORD": password})
        if rc != 0:
            problems.append(
                f"database {database['name']} on {where} refused role {database['user']} "
                f"with the manifest's password: {err}; the application could not log in "
                f"either: fix the password secret before moving")


MARIADB = ["mariadb", "--batch", "--skip-column-names", "--raw"]


def sql_literal(text: str) -> str:
    """``text`` as a MariaDB string literal (the default sql_mode: backslash escapes)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def major_minor(text: str) -> list[int]:
    """[major, minor] of the first MAJOR.MINOR.PATCH in ``text`` ("10.11.6-MariaDB"), or []."""
    found = re.search(r"\b(\d+)\.(\d+)\.\d+", text)
    return [int(found[1]), int(found[2])] if found else []


def mariadb_version(where: str, problems: list[str]) -> list[int]:
    """The server's [major, minor]; [] (and a problem) when it does not answer with one."""
    rc, out, err = run(MARIADB, "SELECT VERSION();")
    if rc != 0 or not out:
        problems.append(f"MariaDB on {where} does not answer: {err or out}")
        return []
    version = major_minor(out)
    if not version:
        problems.append(f"MariaDB on {where} answers version {out!r}, not MAJOR.MINOR.PATCH")
    return version


def mariadb_sizes(databases: list[dict], where: str, problems: list[str]) -> list[str]:
    needs = []
    for database in databases:
        name = sql_literal(database["name"])
        rc, out, err = run(MARIADB, "SELECT IF(COUNT(*) = 0, 'missing', 'here') FROM"
                                    f" information_schema.schemata WHERE schema_name = {name};"
                                    " SELECT COALESCE(SUM(data_length + index_length), 0) FROM"
                                    f" information_schema.tables WHERE table_schema = {name};")
        lines = out.splitlines()
        if rc != 0 or lines[:1] != ["here"] or len(lines) != 2 or not lines[1].isdigit():
            problems.append(f"database {database['name']} on {where} cannot be read: "
                            f"{err or ('it does not exist' if lines[:1] == ['missing'] else out)}")
            continue
        needs.append(f"/var/lib/mysql={lines[1]}")
    return needs


def account_addresses(user: str) -> list[str]:
    """The IPv4 addresses among the host parts of ``user``'s accounts: an application that
    names its server's address logs in over TCP from that address, not as localhost."""
    _, out, _ = run(MARIADB, f"SELECT host FROM mysql.user WHERE user = {sql_literal(user)};")
    return [h for h in out.splitlines() if re.fullmatch(r"\d{1,3}(\.\d{1,3}){3}", h)]


def check_mariadb_logins(databases: list[dict], passwords: list[str], where: str,
                         problems: list[str]) -> None:
    """Each application user logs in with the manifest's password (MYSQL_PWD: the client's
    environment, never its arguments), over the unix socket or to an address its accounts
    name."""
    for database, password in zip(databases, passwords, strict=True):
        login = ["mariadb", "--no-defaults", "--batch", "--connect-timeout=5",
                 "--user", database["user"], "--database", database["name"],
                 "--execute", "SELECT 1"]
        rc, _, err = run(login, env={**os.environ, "MYSQL_PWD": password})
        for address in account_addresses(database["user"]) if rc != 0 else []:
            rc, _, _ = run([*login, "--protocol=TCP", "--host", address],
                           env={**os.environ, "MYSQL_PWD": password})
            if rc == 0:
                break
        if rc != 0:
            problems.append(
                f"database {database['name']} on {where} refused user {database['user']} "
                f"with the manifest's password: {err}; the application could not log in "
                f"either: fix the password secret before moving")


# What binlog replication needs of the source's MariaDB: (variable, the value it needs).
BINLOG_SETTINGS = (("log_bin", "ON"), ("binlog_format", "ROW"), ("skip_networking", "OFF"))


def binlog_settings() -> tuple[dict[str, str], str]:
    """The source's binlog settings, server_id, bind_address and version (SHOW GLOBAL
    VARIABLES, as root over the unix socket), and an error when it does not answer."""
    names = ", ".join(sql_literal(n) for n in (*(s[0] for s in BINLOG_SETTINGS), "server_id",
                                               "bind_address", "version"))
    rc, out, err = run(MARIADB, f"SHOW GLOBAL VARIABLES WHERE Variable_name IN ({names});")
    if rc != 0:
        return {}, err or out
    return dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line), ""


def binlog_problems(found: dict[str, str]) -> list[str]:
    """What the source's MariaDB lacks for binlog replication, each "setting (is VALUE)"."""
    lacking = [f"{name} {wanted} (is {found.get(name) or 'unset'})"
               for name, wanted in BINLOG_SETTINGS if found.get(name, "").upper() != wanted]
    if found.get("server_id", "0") in ("", "0"):
        lacking.append(f"a non-zero server_id (is {found.get('server_id') or 'unset'})")
    if not loopback_bound(found.get("bind_address", "")):
        lacking.append(f"bind_address admitting 127.0.0.1, where the replication tunnel "
                       f"reaches it (is {found['bind_address']})")
    if "mariadb" not in found.get("version", "").lower():
        lacking.append(f"MariaDB's GTID (the server is {found.get('version') or 'unknown'})")
    return lacking


# bind_address values a connection to 127.0.0.1 reaches (Debian's default among them); it
# may list several (MariaDB 10.11), and an unset one listens everywhere.
LOOPBACK_BINDS = {"", "*", "0.0.0.0", "::", "127.0.0.1", "localhost"}


def loopback_bound(bind_address: str) -> bool:
    """Whether MariaDB listens where the replication tunnel connects: 127.0.0.1."""
    return any(part.strip() in LOOPBACK_BINDS for part in bind_address.split(","))


def check_binlog(system: str, databases: list[dict], where: str, problems: list[str]) -> None:
    """A source whose databases are kept in step by binlog replication has the binlog in
    ROW format, a server_id and networking on loopback (MariaDB's GTID comes with the
    binlog)."""
    replicated = [d["name"] for d in databases if d.get("method") == "binlog_replication"]
    if not replicated:
        return
    found, error = binlog_settings()
    lacking = binlog_problems(found) if not error else [f"an answer ({error})"]
    if lacking:
        problems.append(
            f"{system}: MariaDB on {where} cannot be replicated (binlog_replication of "
            f"{', '.join(replicated)}): it needs {'; '.join(lacking)}. Set them in its "
            "configuration (/etc/mysql/mariadb.conf.d/) and restart MariaDB in the "
            "department's maintenance window, then check again")


def main() -> None:
    spec = json.loads(sys.argv[1])
    databases = spec["databases"]
    passwords = sys.stdin.read().splitlines()[:len(databases)]
    if len(passwords) != len(databases):
        sys.exit(f"probe_source.py: {len(databases)} passwords expected on stdin, "
                 f"{len(passwords)} given")
    where, problems = spec["where"], []
    clock = int(time.time())
    needs = tree_sizes(spec["trees"], where, problems)
    check_configuration(spec["configuration"], spec["rewrites"], where, problems)
    postgresql = [(d, p) for d, p in zip(databases, passwords, strict=True)
                  if d.get("engine", "postgresql") == "postgresql"]
    mariadb = [(d, p) for d, p in zip(databases, passwords, strict=True)
               if d.get("engine") == "mariadb"]
    major = 0
    if postgresql:
        major = postgres_major(where, problems)
        if major:
            needs += database_sizes([d for d, _ in postgresql], where, problems)
            check_logins([d for d, _ in postgresql], [p for _, p in postgresql], where,
                         problems)
    version = mariadb_version(where, problems) if mariadb else []
    if version:
        needs += mariadb_sizes([d for d, _ in mariadb], where, problems)
        check_mariadb_logins([d for d, _ in mariadb], [p for _, p in mariadb], where,
                             problems)
        check_binlog(spec.get("system", ""), [d for d, _ in mariadb], where, problems)
    print(json.dumps({"clock": clock, "problems": problems, "needs": needs,
                      "pg_major": major, "mariadb_version": version}))


if __name__ == "__main__":
    main()
