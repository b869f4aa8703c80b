"""replication_tunnel.sh, the source's side of the replication tunnel, run here with its
functions against a fake ``systemctl`` (and ``journalctl``) that records what it is asked and
keeps the unit's state in files, the unit written into a folder of the test: the unit runs the
tunnel's ssh with its forwards on loopback at both ends, restarts it whenever it drops, opens
once (a second open changes nothing), reports ssh's last words and leaves no unit when the
tunnel does not open, and goes entirely at close. Whatever would not be plain words in a unit
file (a quote, "%", "$", a space in a word), an address that is no IPv4 address, a forward
that is no PORT:TO or a unit name of another kind is refused before anything is written."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "playbooks/files/replication_tunnel.sh"
UNIT = "migrate-replication-tunnel-swj-shop.service"
SSH = ("ssh -F /dev/null -i /root/.ssh/migrate-swj-shop -o IdentitiesOnly=yes"
       " -o StrictHostKeyChecking=yes -o UserKnownHostsFile=/root/.ssh/migrate-swj-shop.known_hosts"
       " -o GlobalKnownHostsFile=/dev/null -o BatchMode=yes -o Compression=no"
       " -o ConnectTimeout=10 -o ControlMaster=no -o ControlPath=none"
       " -o ExitOnForwardFailure=yes -o ServerAliveInterval=15 -o ServerAliveCountMax=3")

FAKE_SYSTEMCTL = """#!/bin/bash
printf '%s\\n' "$*" >> "$CALLS"
words=(); for word in "$@"; do case "$word" in --*|-q) ;; *) words+=("$word") ;; esac; done
case "${words[0]}" in
    is-active) [ -e "$STATE/active" ] ;;
    is-enabled) [ -e "$STATE/enabled" ] ;;
    show) if [ -e "$STATE/active" ]; then echo active; else echo inactive; fi ;;
    restart|start) if [ -n "${FAIL:-}" ]; then exit 1; fi; touch "$STATE/active" ;;
    stop) rm -f "$STATE/active" ;;
    enable) touch "$STATE/enabled" ;;
    disable) rm -f "$STATE/enabled" ;;
esac
"""
FAKE_JOURNALCTL = """#!/bin/bash
echo "Error: remote port forwarding failed for listen port 13306"
"""


def functions() -> str:
    text = SCRIPT.read_text()
    return text[:text.index('\nmode="${1:-}"')]


class Host:
    def __init__(self, folder: Path) -> None:
        self.bin = folder / "bin"
        self.units = folder / "units"
        self.state = folder / "state"
        for made in (self.bin, self.units, self.state):
            made.mkdir()
        for name, text in (("systemctl", FAKE_SYSTEMCTL), ("journalctl", FAKE_JOURNALCTL)):
            (self.bin / name).write_text(text)
            (self.bin / name).chmod(0o755)
        self.calls = folder / "calls"

    def run(self, mode: str, *args: str, ssh: str = SSH, fail: bool = False
            ) -> subprocess.CompletedProcess:
        self.calls.write_text("")
        call = f'UNIT_DIR={self.units}; {mode}_tunnel "$@"'
        return subprocess.run(["bash", "-c", functions() + "\n" + call, "test", *args],
                              capture_output=True, text=True, timeout=60, check=False,
                              env={"PATH": f"{self.bin}:/usr/bin:/bin", "MIGRATE_SSH": ssh,
                                   "CALLS": str(self.calls), "STATE": str(self.state),
                                   **({"FAIL": "1"} if fail else {})})

    def asked(self) -> list[str]:
        return self.calls.read_text().splitlines()

    def unit(self) -> Path:
        return self.units / UNIT


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return Host(tmp_path)


def test_the_unit_runs_the_tunnel_s_ssh_with_its_forwards_and_restarts_it(host: Host) -> None:
    done = host.run("open", UNIT, "192.0.2.10", "13306:3306", "15432:5432")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["changed"]
    text = host.unit().read_text()
    exec_line = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    ssh = SSH.split()
    assert exec_line.split() == [
        "ExecStart=/usr/bin/ssh", *ssh[1:], "-f", "-N",
        "-R", "127.0.0.1:13306:127.0.0.1:3306", "-R", "127.0.0.1:15432:127.0.0.1:5432",
        "root@192.0.2.10"]
    for setting in ("Type=forking", "Restart=always", "StartLimitIntervalSec=0",
                    "WantedBy=multi-user.target"):
        assert setting in text.splitlines()
    assert [call for call in host.asked() if not call.startswith("is-")] == [
        "daemon-reload", f"enable --quiet -- {UNIT}", f"restart -- {UNIT}"]


def test_a_running_tunnel_is_left_as_it_is(host: Host) -> None:
    assert host.run("open", UNIT, "192.0.2.10", "15432:5432").returncode == 0
    again = host.run("open", UNIT, "192.0.2.10", "15432:5432")
    assert (again.returncode, again.stdout) == (0, ""), again.stderr
    assert [call.split()[0] for call in host.asked()] == ["is-active", "is-enabled"]


def test_a_tunnel_that_does_not_open_says_why_and_leaves_no_unit(host: Host) -> None:
    done = host.run("open", UNIT, "192.0.2.10", "13306:3306", fail=True)
    assert done.returncode == 1
    assert "did not open" in done.stderr
    assert "remote port forwarding failed for listen port 13306" in done.stderr
    assert not host.unit().exists()
    assert f"disable --quiet -- {UNIT}" in host.asked()


def test_close_removes_the_unit_once(host: Host) -> None:
    assert host.run("open", UNIT, "192.0.2.10", "15432:5432").returncode == 0
    closed = host.run("close", UNIT)
    assert (closed.returncode, closed.stdout.split()) == (0, ["changed"]), closed.stderr
    assert not host.unit().exists()
    assert f"stop -- {UNIT}" in host.asked() and f"disable --quiet -- {UNIT}" in host.asked()
    again = host.run("close", UNIT)
    assert (again.returncode, again.stdout) == (0, ""), again.stderr


@pytest.mark.parametrize(("args", "ssh"), [
    ((UNIT, "192.0.2.10", "15432:5432"), SSH + " -o ProxyCommand=sh%h"),
    ((UNIT, "192.0.2.10", "15432:5432"), SSH + " -o LocalCommand=$(touch/pwned)"),
    ((UNIT, "192.0.2.10", "15432:5432"), SSH + " '-oProxyCommand=x'"),
    ((UNIT, "192.0.2.10", "15432:5432"), SSH + " -i /root/.ssh/a\\b"),
    ((UNIT, "192.0.2.10", "15432:5432"), ""),
    ((UNIT, "192.0.2.10; touch /pwned", "15432:5432"), SSH),
    ((UNIT, "db.example", "15432:5432"), SSH),
    ((UNIT, "192.0.2.10", "15432:5432:22"), SSH),
    ((UNIT, "192.0.2.10", "0:5432"), SSH),
    ((UNIT, "192.0.2.10", "15432:99999"), SSH),
    ((UNIT, "192.0.2.10"), SSH),
    (("../../tmp/x.service", "192.0.2.10", "15432:5432"), SSH),
    (("ssh.service", "192.0.2.10", "15432:5432"), SSH),
])
def test_what_would_not_be_plain_words_in_a_unit_file_is_refused(
        host: Host, args: tuple[str, ...], ssh: str) -> None:
    done = host.run("open", *args, ssh=ssh)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert list(host.units.iterdir()) == []
    assert not [call for call in host.asked() if not call.startswith(("is-", "show"))]
