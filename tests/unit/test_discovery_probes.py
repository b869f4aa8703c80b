"""The probes over a scripted session (no host): which commands run, as whom, and what the
host discovery makes of their answers; a failing probe is recorded, the others still run."""

from __future__ import annotations

import re
import shlex
import threading
import time
from pathlib import Path

import pytest

from migrate.adapters import access
from migrate.adapters.access import COMMAND_TIMEOUT, CommandResult, Login, SourceSession
from migrate.core import state
from migrate.core.errors import StageFailed
from migrate.orchestrate.pipeline import context_of
from migrate.stages import discovery
from migrate.stages.discovery import probes
from migrate.stages.discovery.host import discover_host

ANSWERS = {
    "cat /etc/os-release": 'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12"\n',
    "uname -r": "6.1.0-28-amd64\n",
    "echo hostname": "hostname wiki1\ncpus 2\nmem_kb 4028712\nroot_kb 100\nroot_used_kb 50\n",
    "dpkg-query -W": "ii \tnginx-light\t1.22.1-9\tamd64\t\toptional\n",
    "ss -H -ltnp": ('LISTEN 0 511 0.0.0.0:80 0.0.0.0:* users:(("nginx",pid=402,fd=6))\n'
                    'LISTEN 0 5 0.0.0.0:8080 0.0.0.0:* users:(("python3",pid=412,fd=3))\n'),
    "for p in 402 412": ("402\t0::/system.slice/nginx.service\n"
                         "412\t0::/system.slice/wiki-app.service\n"),
    "systemctl show": ("Id=nginx.service\nWorkingDirectory=\n\n"
                       "Id=wiki-app.service\nWorkingDirectory=/srv/wiki\n"),
    "du -s -k": "2052\t/srv/wiki\n",
    "command -v psql": "",
    "### $f": "### /etc/cron.d/wiki local\n15 2 * * * root /usr/local/bin/backup\n",
    "ls -1d": "/var/log/nginx/access.log\n",
    "nginx -T": "server {\n    listen 80;\n    root /var/lib/mediawiki;\n"
                "    location /doc { alias /usr/share/doc; }\n}\n",
    "readlink -f": "/var/lib/mediawiki\n",
}


class ScriptedSession(SourceSession):
    """Answers commands from ANSWERS by substring; records every command it was given."""

    def __init__(self, user: str = "root", psql: list[str] | None = None,
                 postgresql_runs: bool = True) -> None:
        super().__init__(Login("192.168.178.10", user, None), client=None)  # type: ignore[arg-type]
        self.commands: list[str] = []
        self.psql = psql
        self.postgresql_runs = postgresql_runs

    def run(self, command: str, timeout: float = 0) -> CommandResult:
        self.commands.append(command)
        if command == probes.POSTGRESQL_SERVER_RUNNING and not self.postgresql_runs:
            return CommandResult(1, "", "")
        if "psql -X" in command:
            if self.psql is None:
                return CommandResult(1, "", "psql: error: connection refused")
            return CommandResult(0, self.psql.pop(0), "")
        if "grep -rIns" in command:
            return CommandResult(1, "", "")
        answer = next((text for key, text in ANSWERS.items() if key in command), None)
        return CommandResult(0, answer or "", "")

    def stream_lines(self, command: str, timeout: float = 0):
        self.commands.append(command)
        yield '10.0.0.1 - - [10/Oct/2026:10:00:00 +0800] "GET / HTTP/1.1" 200 1 "-" "-"'


def test_a_host_is_discovered_probe_by_probe_and_failures_are_recorded() -> None:
    session = ScriptedSession()
    result = discover_host(session, "192.168.178.10", ["/srv/wiki/uploads"])
    seen = result["observed"]
    assert seen["os"]["version_id"] == "12" and seen["os"]["kernel"] == "6.1.0-28-amd64"
    assert {e["port"]: e["unit"] for e in seen["listening"]} == {80: "nginx.service",
                                                                 8080: "wiki-app.service"}
    assert seen["data_directories"] == [{"path": "/srv/wiki", "size_kb": 2052}]
    assert seen["cron"][0]["command"] == "/usr/local/bin/backup"
    assert seen["web_access"]["months"] == [{"month": "2026-10", "requests": 1,
                                             "distinct_clients": 1}]
    # PostgreSQL answered with an error: recorded, and every other probe still ran
    assert [e["probe"] for e in result["probe_errors"]] == ["postgresql"]
    assert "connection refused" in result["probe_errors"][0]["message"]
    assert set(result["timings_s"]) == {"os", "hardware", "packages", "listening",
                                        "running_units", "unix_sockets", "units",
                                        "web_roots", "data_directories", "postgresql",
                                        "mariadb", "watch", "timers", "runtime_modules", "tomcat",
                                        "cron", "web_access", "address_mentions",
                                        "database_references", "secrets", "package_owners"}
    assert seen["web_roots"] == ["/var/lib/mediawiki"]
    du = next(c for c in session.commands if "du -s -k" in c)
    assert "/var/lib/mediawiki" in du
    du = next(c for c in session.commands if "du -s -k" in c)
    assert "/srv/wiki/uploads" in du and "/srv/wiki" in du  # declared and working dirs
    grep = [c for c in session.commands if "grep -rIns" in c]
    assert all("/srv/wiki" in c and "/etc" in c for c in grep)


def test_psql_without_a_running_server_is_no_postgresql_and_no_probe_error() -> None:
    session = ScriptedSession(postgresql_runs=False)  # psql connecting would be refused
    result = discover_host(session, "192.168.178.10", [])
    assert result["observed"]["postgresql"] is None
    assert result["probe_errors"] == []
    assert not any("psql -X" in c for c in session.commands)
    assert result["observed"]["packages"] == [{"name": "nginx-light", "version": "1.22.1-9",
                                               "arch": "amd64", "base_system": False}]


def test_a_sudo_login_runs_root_probes_through_sudo_and_psql_as_postgres() -> None:
    session = ScriptedSession(user="ops")
    discover_host(session, "192.168.178.10")
    ss = next(c for c in session.commands if "ss -H -ltnp" in c)
    assert ss.startswith("sudo -n sh -c ")
    psql = next(c for c in session.commands if "psql -X" in c)
    assert "sudo -n -u postgres psql" in psql and "runuser" not in psql


def test_secret_values_are_cut_on_the_host_before_they_are_sent() -> None:
    session = ScriptedSession()
    probes.probe_secrets(session, ["/srv/wiki"])
    command = session.commands[-1]
    pipeline = command.split(" | ")
    assert pipeline[0].startswith("grep -rIns") and pipeline[-1].startswith("sed -E")
    sed = shlex.split(pipeline[-1])
    assert sed[-1] == "s#^([^:]*:[0-9]+:[^=:]*[=:]).*#\\1 <cut>#"
    assert "--exclude=shadow*" in command or "--exclude='shadow*'" in command


CLUSTER = """### settings
data_directory,/var/lib/postgresql/15/main
server_version,15.10 (Debian 15.10-0+deb12u1)
### roles
postgres,t,t,{}
wiki,t,f,{}
wiki_ro,t,f,{wiki_readers}
### databases
postgres,postgres,7537199,UTF8,,t
"wiki db",wiki,7631471,UTF8,"{=Tc/wiki,wiki=CTc/wiki,wiki_ro=c/wiki}",t
archive,postgres,7400000,UTF8,,f
"""
TABLES = """### objects 0
granted,wiki
granted,wiki_ro
owner,wiki
schema_owner,pg_database_owner
"""


def test_postgresql_in_two_psql_runs_whatever_the_number_of_databases() -> None:
    session = ScriptedSession(psql=[CLUSTER, TABLES])
    server = probes.probe_postgresql(session, watch_s=0)  # a watch's second sample: a third
    assert server is not None and server["version"].startswith("15.10")
    assert [(r["name"], r["superuser"], r["member_of"]) for r in server["roles"]] == [
        ("postgres", True, []), ("wiki", False, []), ("wiki_ro", False, ["wiki_readers"])]
    databases = {d["name"]: d for d in server["databases"]}
    assert databases["wiki db"]["owner"] == "wiki"
    assert databases["wiki db"]["connect_grantees"] == ["PUBLIC", "wiki", "wiki_ro"]
    assert databases["wiki db"]["table_grantees"] == ["wiki", "wiki_ro"]
    assert databases["wiki db"]["table_owners"] == ["wiki"]
    assert "table_owners" not in databases["archive"]  # it takes no connections
    psql = [c for c in session.commands if "psql -X" in c]
    assert len(psql) == 2
    assert "\\c 'wiki db'" in psql[1] and "archive" not in psql[1]


class LocalSession(SourceSession):
    """Runs the probe's commands here, in bash: for probes whose shell is the point."""

    def __init__(self) -> None:
        super().__init__(Login("127.0.0.1", "root", None), client=None)  # type: ignore[arg-type]

    def run(self, command: str, timeout: float = 0) -> CommandResult:
        import subprocess

        done = subprocess.run(["bash", "-c", command], capture_output=True, text=True,
                              timeout=30, check=False)
        return CommandResult(done.returncode, done.stdout, done.stderr)


def test_a_declared_folder_inside_another_candidate_gets_its_own_size(tmp_path) -> None:
    outer = tmp_path / "mediawiki"
    inner = outer / "images"
    inner.mkdir(parents=True)
    (outer / "index.php").write_bytes(b"x" * 64 * 1024)
    (inner / "seal.png").write_bytes(b"y" * 256 * 1024)
    found = {d["path"]: d["size_kb"]
             for d in probes.probe_data_directories(LocalSession(), [str(outer), str(inner)])}
    assert set(found) >= {str(outer), str(inner)}  # one du would print only the outer one
    assert found[str(inner)] >= 256 and found[str(outer)] >= found[str(inner)] + 64


# ---- the databases' watch: one window for both engines, whatever its length --------------

# one database in each engine: the answers to every command whose key is in it, in turn
TWO_ENGINES = {
    "\\echo '### settings'": "### settings\nserver_version,15.10\n### roles\n"
                              "### databases\napp,app,8000000,UTF8,,t\n",
    "### objects 0": "### objects 0\nowner,app\n",
    "### writes before 0": "### writes before 0\npublic,sessions,5\npublic,users,1\n",
    "### writes after 0": "### writes after 0\npublic,sessions,9\npublic,users,1\n",
    "SELECT '### settings'": "### settings\nversion\t10.11.6-MariaDB\n### databases\n"
                             "shop\t81920\tutf8mb4\t2\t0\n### users\n### grants\n### global\n",
    "SELECT '### before'": "### before\nrows\tshop\tcarts\t3\nshop.carts\t17\n",
    "SELECT '### after'": "### after\nrows\tshop\tcarts\t4\nshop.carts\t23\n",
}


class Clocked(SourceSession):
    """A host on which time passes: a command takes the seconds it sleeps there (pg_sleep,
    SLEEP) and, as paramiko's read does, fails when it is silent as long as its timeout.
    Answers TWO_ENGINES; a command holding a key of ``failing`` exits 1. ``slept`` is the
    seconds slept on the host; ``log`` the commands and, as ``wait N``, the waits here."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, failing: tuple[str, ...] = ()) -> None:
        super().__init__(Login("192.168.178.10", "root", None), client=None)  # type: ignore[arg-type]
        self.failing = failing
        self.slept = 0
        self.waited = 0.0
        self.log: list[str] = []
        monkeypatch.setattr(time, "sleep", self.wait)

    def wait(self, seconds: float) -> None:
        self.waited += seconds
        self.log.append(f"wait {seconds:.0f}")

    def run(self, command: str, timeout: float = COMMAND_TIMEOUT) -> CommandResult:
        self.log.append(command)
        silent = sum(int(n) for n in re.findall(r"sleep\((\d+)\)", command, re.IGNORECASE))
        self.slept += silent
        if silent >= timeout:
            raise StageFailed(f"{self.login.address}: no answer to a probe in {timeout:.0f} s")
        if any(key in command for key in self.failing):
            return CommandResult(1, "", "ERROR:  canceling statement")
        return CommandResult(0, "".join(answer for key, answer in TWO_ENGINES.items()
                                        if key in command), "")

    def stream_lines(self, command: str, timeout: float = COMMAND_TIMEOUT):
        yield from ()

    def position(self, key: str) -> int:
        return next(n for n, line in enumerate(self.log) if key in line)


def test_a_host_with_postgresql_and_mariadb_is_watched_in_one_window(
        monkeypatch: pytest.MonkeyPatch) -> None:
    session = Clocked(monkeypatch)
    result = discover_host(session, "192.168.178.10", watch_s=60)
    assert result["probe_errors"] == []
    seen = result["observed"]
    [app] = seen["postgresql"]["databases"]
    assert app["watched_s"] == 60
    assert app["written_while_watched"] == [{"table": "public.sessions", "writes": 4}]
    [shop] = seen["mariadb"]["databases"]
    assert shop["watched_s"] == 60
    assert shop["written_while_watched"] == [{"table": "shop.carts", "rows_before": 3,
                                              "rows_after": 4}]
    # both first samples, one wait, both second samples: one window, not one per engine
    assert session.slept + session.waited == pytest.approx(60, abs=1)
    assert (session.position("### writes before 0") < session.position("SELECT '### before'")
            < session.position("wait ") < session.position("### writes after 0")
            < session.position("SELECT '### after'"))
    assert [line for line in session.log if line.startswith("wait ")] == ["wait 60"]
    assert "watch" in result["timings_s"]


@pytest.mark.parametrize("probe", [probes.probe_postgresql, probes.probe_mariadb])
def test_a_watch_longer_than_the_read_timeout_is_not_cut(probe,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    watch_s = int(COMMAND_TIMEOUT) + 100  # --watch takes up to 600 s
    session = Clocked(monkeypatch)
    server = probe(session, watch_s=watch_s)  # the host stays silent that long: no error
    assert server is not None
    [database] = server["databases"]
    assert database["watched_s"] == watch_s and database["written_while_watched"]
    assert session.slept + session.waited == pytest.approx(watch_s, abs=1)


def test_a_failed_second_sample_keeps_the_probe_and_the_other_engines_watch(
        monkeypatch: pytest.MonkeyPatch) -> None:
    session = Clocked(monkeypatch, failing=("### writes after 0",))
    result = discover_host(session, "192.168.178.10", watch_s=5)
    assert [e["probe"] for e in result["probe_errors"]] == ["postgresql"]
    assert "psql (writes): exit 1" in result["probe_errors"][0]["message"]
    [app] = result["observed"]["postgresql"]["databases"]
    assert app["table_owners"] == ["app"] and "written_while_watched" not in app
    [shop] = result["observed"]["mariadb"]["databases"]
    assert [t["table"] for t in shop["written_while_watched"]] == ["shop.carts"]


def test_no_database_to_watch_is_no_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    session = ScriptedSession()  # PostgreSQL refuses, MariaDB has no database
    waited: list[float] = []
    monkeypatch.setattr(time, "sleep", waited.append)
    result = discover_host(session, "192.168.178.10", watch_s=60)
    assert waited == [] and result["timings_s"]["watch"] < 1


# ---- several hosts: side by side, in order --------------------------------------------------


def test_the_hosts_of_an_estate_are_discovered_side_by_side_in_order(
        estate: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first host ends only once every other has: one host at a time, it would wait
    for them alone. Its results still come first, each host's where its manifest names it."""
    loaded = access.open_estate_for_sources(estate)
    for system in loaded.systems.values():
        key = state.secrets_dir(loaded) / state.secret_name(system.source.ssh.key)
        key.parent.mkdir(parents=True, exist_ok=True)
        key.write_text("never read: discover_one is replaced\n")
    addresses = [h.address for s in loaded.systems.values() for h in s.source.hosts]
    others_done, ended, running, peak = threading.Event(), [], [0], [0]
    lock = threading.Lock()

    def one(_context, login: Login, *_args) -> dict:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        if login.address == addresses[0]:
            assert others_done.wait(10), "the other hosts waited for the first"
        with lock:
            running[0] -= 1
            ended.append(login.address)
            if len(ended) == len(addresses) - 1:
                others_done.set()
        return {"observed": {"hardware": {"hostname": f"at-{login.address}"}},
                "probe_errors": [], "timings_s": {}, "duration_s": 0.0}

    monkeypatch.setattr(discovery, "discover_one", one)
    outcomes = discovery.discover_systems(context_of(loaded), [])
    assert ended[-1] == addresses[0] and 1 < peak[0] <= discovery.PARALLEL_HOSTS
    assert [o.system for o in outcomes] == list(loaded.systems)
    for outcome in outcomes:
        hosts = outcome.document["hosts"]
        assert [h["name"] for h in hosts] == [
            h.name for h in loaded.systems[outcome.system].source.hosts]
        assert all(h["observed"]["hardware"]["hostname"] == f"at-{h['address']}"
                   for h in hosts)
