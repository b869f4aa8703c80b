"""A secret is redacted in every form the project's artifacts write it, and a short secret is
refused where it is read.

The secret holds a quote, a backslash, an apostrophe and non-ASCII text, so JSON, the
ansible-runner job events (ASCII-only JSON holding display text that holds JSON again) and
shell quoting all write it differently from its raw value. It ends in a random hex marker
that no encoding changes: a file still holding the marker still holds the secret.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from pathlib import Path

import ansible_runner
import pytest

from migrate.adapters import ansible as runner
from migrate.core import state
from migrate.core.errors import EnvironmentNotReady
from migrate.core.journal import REDACTED, Journal
from migrate.orchestrate.pipeline import open_estate

MARKER = secrets.token_hex(8)
SECRET = f'Ki"ss\\me\'-口令✓-{MARKER}'

PLAY = """
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: a command whose output is JSON holding the secret
      ansible.builtin.command:
        argv: ["{{ ansible_playbook_python }}", "-c",
               "import json, sys; print(json.dumps({'password': sys.argv[1]}))", "{{ secret }}"]
    - name: the secret shell-quoted in a command line
      ansible.builtin.shell: "printf '%s' {{ secret | quote }} >/dev/null"
    - name: the secret in a message
      ansible.builtin.debug:
        msg: "{{ secret }}"
"""


def run_ansible(tmp_path: Path) -> Path:
    """Run a real play through ansible-runner; the folder of its raw artifacts."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "play.yml").write_text(PLAY)
    (tmp_path / "hosts").write_text(f"localhost ansible_python_interpreter={sys.executable}\n")
    home = tmp_path / "ansible-home"
    (home / "tmp").mkdir(parents=True)
    env = {"PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
           "ANSIBLE_HOME": str(home), "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
           "ANSIBLE_NOCOLOR": "1"}
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    done = ansible_runner.run(private_data_dir=str(private), playbook=str(project / "play.yml"),
                              inventory=str(tmp_path / "hosts"), extravars={"secret": SECRET},
                              envvars=env, quiet=True, suppress_env_files=True, ident="hostile",
                              project_dir=str(project))
    assert done.status == "successful", (private / "artifacts/hostile/stdout").read_text()
    return private / "artifacts" / "hostile"


def texts(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): p.read_text(encoding="utf-8", errors="replace")
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_ansible_artifacts_hold_no_form_of_the_secret(tmp_path: Path) -> None:
    raw = texts(run_ansible(tmp_path))
    events = "".join(text for name, text in raw.items() if name.startswith("job_events"))
    # The forms that really occur: ASCII-only JSON, escaped twice (a result's stdout), and
    # Ansible's shell quoting of the apostrophe.
    assert json.dumps(SECRET)[1:-1] in events
    assert json.dumps(json.dumps(SECRET)[1:-1])[1:-1] in events
    assert json.dumps("'\"'\"'")[1:-1] in events
    kept = runner.keep_artifacts(tmp_path / "private/artifacts/hostile", tmp_path / "kept",
                                 [SECRET])
    scrubbed = texts(kept)
    assert scrubbed.keys() == raw.keys()
    assert {name for name, text in scrubbed.items() if MARKER in text} == set()
    assert REDACTED in scrubbed["stdout"]


def test_the_journal_holds_no_json_escaped_secret(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "state", "示例市", secrets=[SECRET])
    answer = json.dumps({"error": {"message": f"password {SECRET} refused"}})
    journal.append("exchange", details={"answer": answer, "argv": repr(["psql", SECRET])})
    text = journal.path.read_text(encoding="utf-8")
    assert MARKER not in text
    assert text.count(REDACTED) == 2


def test_a_short_secret_is_refused_where_it_is_read(estate: Path) -> None:
    folder = estate / "secrets"
    folder.mkdir(mode=0o700)
    short = folder / "db-short"
    short.write_text("hunter2-pw\n")  # 10 characters
    short.chmod(0o600)
    opened = open_estate(estate)
    with pytest.raises(EnvironmentNotReady) as read:
        state.read_secret(opened, "secret://db-short")
    with pytest.raises(EnvironmentNotReady) as listed:
        state.secret_values(opened)
    for caught in (read, listed):
        assert str(short) in caught.value.message
        assert "too short to redact reliably and too weak" in caught.value.message
        assert "hunter2" not in caught.value.message
    short.write_text("hunter2-pw-long-enough\n")
    assert state.read_secret(opened, "secret://db-short") == "hunter2-pw-long-enough"


def test_the_platform_client_refuses_a_short_app_secret(tmp_path: Path) -> None:
    """The exchange client reads its app secret on its own (it also runs on target
    machines): the same rule holds there."""
    from migrate.adapters import exchange as client

    path = tmp_path / "app-secret"
    path.write_text("short-secret\n")
    path.chmod(0o600)
    with pytest.raises(client.SecretFileError) as caught:
        client.read_secret_file(str(path))
    assert "fewer than 16 characters" in caught.value.message
    assert "short-secret" not in caught.value.message
    path.write_text("a-long-enough-app-secret\n")
    assert client.read_secret_file(str(path)) == "a-long-enough-app-secret"
