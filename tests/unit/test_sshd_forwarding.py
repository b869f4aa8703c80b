"""check_prerequisites refuses a target whose sshd would refuse a replication tunnel into it
(the source's ssh -R as root, listening on the target's loopback): the filters of
playbooks/filter_plugins/sshd_forwarding.py read ``sshd -T -C ...``, sshd's effective
settings for the tunnel's connection (its output is host-read data), and the check's own
tasks from roles/check_prerequisites/tasks/target.yml, run by ansible-runner with a fake
sshd. And the sshd settings prepare_target writes for the tunnels' keepalive."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import pytest
import yaml

from tests.unit.test_prepare_target_mariadb import run_plays

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
# Debian 12's sshd -T for the tunnel's connection, its forwarding lines and a few others
DEBIAN = """port 22
addressfamily any
listenaddress [::]:22
clientaliveinterval 0
clientalivecountmax 3
permitrootlogin without-password
gatewayports no
allowtcpforwarding yes
disableforwarding no
allowstreamlocalforwarding yes
acceptenv LANG
acceptenv LC_*
permitopen any
permitlisten any
"""
TARGET = "wjw-fybj-db (10.20.53.157)"


def filters():
    spec = importlib.util.spec_from_file_location(
        "sshd_forwarding", PLAYBOOKS / "filter_plugins/sshd_forwarding.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def with_line(keyword: str, value: str) -> str:
    """DEBIAN with ``keyword``'s line saying ``value``."""
    return "".join(f"{keyword} {value}\n" if line.split(" ", 1)[0] == keyword else f"{line}\n"
                   for line in DEBIAN.splitlines())


def problem(stdout: str, rc: int = 0, ports: tuple[int, ...] = (15432,), **more) -> str:
    result = {"rc": rc, "stdout": stdout, "stderr": "", **more,
              "item": ["db1", "192.168.90.22",
                       [{"method": "logical_replication", "port": p, "to": 5432}
                        for p in ports]]}
    return filters().migrate_tunnel_forwarding_problem(result, "wjw-fybj", TARGET)


def test_a_default_sshd_lets_the_tunnel_listen() -> None:
    assert problem(DEBIAN) == ""
    assert problem(DEBIAN, ports=(13306, 15432)) == ""
    assert problem(with_line("allowtcpforwarding", "remote")) == ""


@pytest.mark.parametrize(("keyword", "value", "named"), [
    ("allowtcpforwarding", "no", "AllowTcpForwarding 'no' (needs yes, all or remote)"),
    ("allowtcpforwarding", "local", "AllowTcpForwarding 'local' (needs yes, all or remote)"),
    ("disableforwarding", "yes", "DisableForwarding 'yes' (needs no)"),
    ("permitlisten", "none", "PermitListen 'none' (does not admit 127.0.0.1:15432)")])
def test_a_refusing_option_is_named_with_its_value_the_system_the_target_and_a_hint(
        keyword: str, value: str, named: str) -> None:
    said = problem(with_line(keyword, value))
    assert said.startswith("system wjw-fybj: the sshd of target wjw-fybj-db (10.20.53.157) "
                           "refuses the replication tunnel from db1 (192.168.90.22) for root: "
                           + named + "; hint: "), said
    assert "AllowTcpForwarding remote" in said and "final_dump" in said


@pytest.mark.parametrize(("permit", "admitted"), [
    ("any", True), ("*:15432", True), ("127.0.0.1:15432", True), ("127.0.0.1:*", True),
    ("*:*", True), ("[::1]:13306 127.0.0.1:15432", True),
    ("none", False), ("*:15433", False), ("localhost:15432", False), ("localhost:*", False),
    ("0.0.0.0:15432", False), ("[::1]:15432", False), ("15432", False), ("", False),
    ("127.0.0.1:15432x", False), ("127.0.0.1:015432", True), ("127.0.0.1:1e4", False),
    ("127.0.0.*:15432", True), ("127.0.0.?:*", True), ("12*:15432", True),
    ("127.0.0.1?:15432", False), ("127.0.0.[1]:15432", False), ("127.0.0.1.*:15432", False)])
def test_permit_listen_admits_the_loopback_port_only_as_sshd_matches_it(
        permit: str, admitted: bool) -> None:
    """sshd matches the requested 127.0.0.1 against a PermitListen host as a pattern ("*",
    "?"; "localhost" is not the tunnel's explicit 127.0.0.1), a port as a decimal number or
    "*"; -T prints a bare port as *:PORT."""
    assert filters().listen_admitted(permit, 15432) is admitted


def test_every_port_of_the_source_is_checked_and_the_closed_ones_named() -> None:
    said = problem(with_line("permitlisten", "127.0.0.1:15432"), ports=(13306, 15432))
    assert "PermitListen '127.0.0.1:15432' (does not admit 127.0.0.1:13306)" in said


def test_several_refusals_are_named_at_once() -> None:
    text = with_line("allowtcpforwarding", "local").replace("disableforwarding no",
                                                            "disableforwarding yes")
    said = problem(text)
    assert "AllowTcpForwarding 'local'" in said and "DisableForwarding 'yes'" in said


def test_sshd_failing_is_a_problem_with_its_last_words() -> None:
    said = problem("", rc=255, stderr="/etc/ssh/sshd_config line 3: Bad option\n"
                                       "/etc/ssh/sshd_config: terminating, 1 bad options")
    assert said.startswith("system wjw-fybj: the sshd of target wjw-fybj-db (10.20.53.157)")
    assert "'sshd -T' failed there ('/etc/ssh/sshd_config: terminating, 1 bad options')" in said
    assert "sshd -t" in said
    missing = problem("", rc=None, msg="[Errno 2] No such file or directory: b'/usr/sbin/sshd'")
    assert "No such file or directory" in missing


def test_a_skipped_check_is_no_problem() -> None:
    check = filters().migrate_tunnel_forwarding_problem
    assert check({"skipped": True, "item": ["db1", "192.168.90.22", []]}, "s", TARGET) == ""
    assert check("not a result", "s", TARGET) == ""


@pytest.mark.parametrize("stdout", [
    "", "garbage\n\x00\xff", "allowtcpforwarding\ndisableforwarding\n",
    "ALLOWTCPFORWARDING maybe\n", "permitlisten any\n"])
def test_output_without_the_options_refuses(stdout: str) -> None:
    """sshd -T prints every option: output lacking them, or saying what sshd never says, is
    not taken as allowing (closed, not open, on doubt)."""
    assert "AllowTcpForwarding" in problem(stdout)


def test_the_first_line_of_a_keyword_counts_and_keywords_are_read_without_case() -> None:
    settings = filters().sshd_settings("AllowTcpForwarding no\nallowtcpforwarding yes\n"
                                       "  permitlisten   *:1 *:2  \r\n")
    assert settings == {"allowtcpforwarding": "no", "permitlisten": "*:1 *:2"}
    assert "AllowTcpForwarding 'no'" in problem(
        "allowtcpforwarding no\n" + DEBIAN)  # a second line does not undo a refusal


def test_a_hostile_value_is_shown_escaped_and_short() -> None:
    hostile = "{{ lookup('pipe', 'touch /tmp/x') }}\x1b[2J" + "A" * 500
    said = problem(with_line("allowtcpforwarding", hostile))
    assert "\x1b" not in said and "\\x1b[2J" in said
    assert "A" * 81 not in said and "A" * 10 + "..." in said
    assert len(said) < 1000


def test_the_connection_spec_takes_addresses_only() -> None:
    spec = filters().migrate_sshd_connection
    assert spec("192.168.90.22", "10.20.53.157") == (
        "user=root,host=192.168.90.22,addr=192.168.90.22,laddr=10.20.53.157,lport=22")
    for hostile in ("192.168.90.22,user=nobody", "db1", "", "10.0.0.1 10.0.0.2"):
        with pytest.raises(ValueError):
            spec(hostile, "10.20.53.157")
        with pytest.raises(ValueError):
            filters().migrate_sshd_address(hostile)


# ------------------------------------------------------------------ the check's own tasks


def check_play(fake: Path) -> dict:
    """check_prerequisites' sshd reading (its sshd a fake) and verdict on the target."""
    tasks = yaml.safe_load((PLAYBOOKS / "roles/check_prerequisites/tasks/target.yml").read_text())
    [reading] = [t for t in tasks if t.get("register") == "check_prerequisites_sshd"]
    assert reading["ansible.builtin.command"]["argv"][0] == "/usr/sbin/sshd"
    reading["ansible.builtin.command"]["argv"][0] = str(fake)
    [verdict] = [t for t in tasks if "ansible.builtin.assert" in t]
    found = {"clock": int(time.time()), "pg_majors": [], "mariadb_version": [],
             "filesystems": [], "problems": []}
    return {"name": "Check the target", "hosts": "target", "gather_facts": False,
            "tasks": [{"ansible.builtin.set_fact": {"check_prerequisites_probe": {
                "stdout": json.dumps(found)}}}, reading, verdict]}


def source(moves_to: str, address: str, ports: list[int]) -> dict:
    return {"moves_to": moves_to, "ansible_host": address, "check_prerequisites_pg_major": 0,
            "check_prerequisites_mariadb_version": [],
            "replication_tunnel": [{"method": "logical_replication", "port": p, "to": 5432}
                                   for p in ports]}


def target(instance: str, address: str, ports: list[int]) -> dict:
    return {"instance": instance, "ansible_host": address, "databases": [],
            "replication_tunnel_ports": ports, "migrate_clock_skew_max_s": 30,
            "migrate_system": "wjw-fybj"}


@pytest.mark.slow
@pytest.mark.parametrize("value", ["local", "yes", "{{ lookup('pipe', 'touch {canary}') }}"])
def test_check_prerequisites_asks_sshd_for_each_tunnel_into_the_target_and_refuses(
        tmp_path: Path, value: str) -> None:
    """The target db gets the tunnels of db1 and db2 and is asked once for each, with its
    connection; web gets none (web1 replicates nothing) and is not asked. What sshd says
    is data: a template in it is shown, never run."""
    fake = tmp_path / "bin" / "sshd"
    fake.parent.mkdir()
    canary = tmp_path / "canary"
    value = value.replace("{canary}", str(canary))
    refused = value != "yes"
    said = with_line("allowtcpforwarding", value)
    (tmp_path / "said").write_text(said)
    fake.write_text(f"#!/bin/sh\necho \"$*\" >> \"$0.calls\"\ncat {tmp_path / 'said'}\n")
    fake.chmod(0o755)
    status, text = run_plays(tmp_path, [check_play(fake)], {"all": {"children": {
        "source": {"hosts": {"db1": source("db", "192.0.2.22", [15432]),
                             "db2": source("db", "192.0.2.23", [13307, 15433]),
                             "web1": source("web", "192.0.2.21", [])}},
        "target": {"hosts": {"wjw-fybj-db": target("db", "192.0.2.157", [13307, 15432, 15433]),
                             "wjw-fybj-web": target("web", "192.0.2.159", [])}}}}})
    assert (tmp_path / "bin" / "sshd.calls").read_text().splitlines() == [
        "-T -C user=root,host=192.0.2.22,addr=192.0.2.22,laddr=192.0.2.157,lport=22",
        "-T -C user=root,host=192.0.2.23,addr=192.0.2.23,laddr=192.0.2.157,lport=22"]
    if refused:
        assert status == "failed", text
        for host in ("db1 (192.0.2.22)", "db2 (192.0.2.23)"):
            assert (f"system wjw-fybj: the sshd of target wjw-fybj-db (192.0.2.157) refuses the "
                    f"replication tunnel from {host} for root: AllowTcpForwarding "
                    f"'{value[:80]}") in text
        assert "fatal: [wjw-fybj-db]" in text and "fatal: [wjw-fybj-web]" not in text
    else:
        assert status == "successful", text
    assert not canary.exists()


def test_prepare_target_keeps_a_dead_tunnels_session_short_for_the_tunnels_alone() -> None:
    """The sshd settings prepare_target writes on a target with tunnels into it: a keepalive
    (about a minute, as the tunnel's ServerAlive options on the source) in a Match block for
    root from the replicating sources, validated before it is put in place, sshd checked
    before the reload; decommission_source removes them."""
    tasks = yaml.safe_load((PLAYBOOKS / "roles/prepare_target/tasks/target.yml").read_text())
    [task] = [t for t in tasks if "sshd" in t["name"]]
    copy = task["ansible.builtin.copy"]
    assert copy["dest"] == "{{ migrate_sshd_tunnel_settings }}"
    assert copy["validate"] == "/usr/sbin/sshd -t -f %s"
    lines = [line.strip() for line in copy["content"].splitlines()
             if not line.startswith("#")]
    assert lines == ["Match User root Address {{ prepare_target_tunnel_sources | join(',') }}",
                     "ClientAliveInterval 10", "ClientAliveCountMax 2"]
    assert task["when"] == "replication_tunnel_ports | length > 0"
    assert "migrate_sshd_address" in task["vars"]["prepare_target_tunnel_sources"]
    settings = yaml.safe_load((PLAYBOOKS / "group_vars/all.yml").read_text())
    assert "-o ServerAliveInterval=15 -o ServerAliveCountMax=3" in " ".join(
        settings["migrate_ssh_tunnel"].split())
    for role in ("prepare_target", "decommission_source"):
        handlers = yaml.safe_load((PLAYBOOKS / f"roles/{role}/handlers/main.yml").read_text())
        reload = [h for h in handlers if "Reload sshd" in (h["name"], h.get("listen"))]
        assert [h["name"] for h in reload] == ["Check the sshd configuration before reloading it",
                                               "Reload sshd"]
        assert reload[0]["ansible.builtin.command"]["argv"] == ["/usr/sbin/sshd", "-t"]
    removal = yaml.safe_load(
        (PLAYBOOKS / "roles/decommission_source/tasks/target.yml").read_text())
    assert {"path": "{{ migrate_sshd_tunnel_settings }}", "state": "absent"} in [
        t.get("ansible.builtin.file") for t in removal]


@pytest.mark.slow
def test_prepare_target_writes_the_keepalive_for_the_replicating_sources_alone(
        tmp_path: Path) -> None:
    """The task run by ansible-runner (its file in a folder here, its validation a fake
    sshd): the Match block names db1 and db2, not web1 (it replicates nothing) nor the
    source moving elsewhere; a target without tunnels gets no file."""
    fake = tmp_path / "bin" / "sshd"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho \"$*\" >> \"$0.calls\"\n")
    fake.chmod(0o755)
    tasks = yaml.safe_load((PLAYBOOKS / "roles/prepare_target/tasks/target.yml").read_text())
    [task] = [t for t in tasks if "sshd" in t["name"]]
    del task["notify"]  # the role's handlers are not in this play
    task["ansible.builtin.copy"]["validate"] = f"{fake} -t -f %s"
    task["ansible.builtin.copy"]["dest"] = f"{tmp_path}/{{{{ inventory_hostname }}}}.conf"
    task["ansible.builtin.copy"].pop("owner")
    task["ansible.builtin.copy"].pop("group")
    play = {"name": "Prepare", "hosts": "target", "gather_facts": False, "tasks": [task]}
    status, text = run_plays(tmp_path, [play], {"all": {"children": {
        "source": {"hosts": {"db1": source("db", "192.0.2.22", [15432]),
                             "db2": source("db", "192.0.2.23", [13307, 15433]),
                             "web1": source("web", "192.0.2.21", []),
                             "app1": source("app", "192.0.2.30", [15432])}},
        "target": {"hosts": {"wjw-fybj-db": target("db", "192.0.2.157", [13307, 15432, 15433]),
                             "wjw-fybj-web": target("web", "192.0.2.159", [])}}}}})
    assert status == "successful", text
    written = (tmp_path / "wjw-fybj-db.conf").read_text().splitlines()
    assert [line for line in written if not line.startswith("#")] == [
        "Match User root Address 192.0.2.22,192.0.2.23", "    ClientAliveInterval 10",
        "    ClientAliveCountMax 2"]
    assert not (tmp_path / "wjw-fybj-web.conf").exists()
    [validated] = (tmp_path / "bin" / "sshd.calls").read_text().splitlines()
    assert validated.startswith("-t -f ")
