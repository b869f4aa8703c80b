"""Manifest text is data, never an Ansible template: the real ansible-playbook reads a hostile
manifest's values from the generated inventory and the extra vars without running them, and
``migrate validate`` refuses template markup in every field that reaches a play."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import ansible_runner
import pytest

from migrate.adapters import inventory as inv
from migrate.adapters.inventory import write_inventory
from migrate.orchestrate.pipeline import context_for_plan, context_of, make_plan, open_estate
from migrate.stages.move.session import open_session
from tests.conftest import edit, line_number

SYSTEM = "wjw-fybj"
SOURCE_KEYS = ("192.168.90.21 ssh-ed25519 AAAAsourceweb1\n"
               "192.168.90.22 ssh-ed25519 AAAAsourcedb1\n")
TARGETS = {"web": {"address": "10.20.53.159", "host_key": "ssh-ed25519 AAAAtargetweb"},
           "db": {"address": "10.20.53.157", "host_key": "ssh-ed25519 AAAAtargetdb"}}
# Every host-level variable a real play reads, each in the ways the plays use them: looped
# over, in argv lists, through map/join/regex_replace and a filter that reads them all.
PLAY = """\
- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.command:
        argv: [echo, "{{ item.path }}", "{{ ansible_user }}"]
      loop: "{{ files }}"
    - ansible.builtin.command:
        argv: [echo, "{{ item.unit }}", "{{ item.health | default('') }}"]
      loop: "{{ services }}"
    - ansible.builtin.command:
        argv: [echo, "{{ item.name }}"]
      loop: "{{ databases }}"
    - ansible.builtin.debug:
        msg: >-
          {{ files | map(attribute='path') | join('\\n') | quote }}
          {{ (configuration | default([]) + (rewrites | default([]) | map(attribute='file') | list))
             | map('regex_replace', '^', '--exclude=') | list }}
    - ansible.builtin.debug:
        msg: "{{ item.old | regex_replace('x', item.new) }} {{ item.file }}"
      loop: "{{ rewrites | default([]) }}"
    - ansible.builtin.debug:
        msg: "{{ hostvars | to_json }}"
"""


def canary_lookup(folder: Path, name: str) -> str:
    return f"{{{{ lookup('pipe', 'touch {folder / name}') }}}}"


def hostile_estate(estate: Path, canaries: Path):
    """The example estate with a hostile wjw-fybj, built as a manifest that skipped
    validation would be (model_copy does not validate)."""
    loaded = open_estate(estate)
    system = loaded.systems[SYSTEM]
    work = system.workload

    def bad(name: str) -> str:
        return canary_lookup(canaries, name)

    workload = work.model_copy(update={
        "files": [work.files[0].model_copy(update={"path": f"/srv/{bad('files-path')}"})],
        "services": [work.services[0].model_copy(update={"health": f"/{bad('health')}",
                                                         "unit": f"{bad('unit')}.service"})],
        "databases": [work.databases[0].model_copy(update={"name": bad("database")})],
        "configuration": [*work.configuration, work.configuration[0].model_copy(
            update={"path": f"/opt/{bad('configuration')}"})],
        "rewrites": [work.rewrites[0].model_copy(update={
            "old": f"{{% if {bad('rewrite-old')[3:-3]} %}}x{{% endif %}}",
            "new": bad("rewrite-new")})],
    })
    source = system.source.model_copy(update={"ssh": system.source.ssh.model_copy(
        update={"user": f"ops{bad('ssh-user')}"})})
    loaded.systems[SYSTEM] = system.model_copy(update={"workload": workload, "source": source})
    return loaded


def run_local_play(folder: Path, inventory: Path, extravars: dict | None = None,
                   play: str = PLAY) -> str:
    """The play through ansible-runner, every host of the inventory run on this machine."""
    (folder / "play.yml").write_text(play)
    (folder / "private").mkdir(exist_ok=True)
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
             "ansible_become": False}
    runner = ansible_runner.run(
        private_data_dir=str(folder / "private"), playbook=str(folder / "play.yml"),
        inventory=str(inventory), extravars={**(extravars or {}), **local}, quiet=True,
        suppress_env_files=True, project_dir=str(folder),
        envvars={"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
                 "ANSIBLE_HOME": str(folder / "ansible")})
    with runner.stdout as output:
        text = output.read()
    assert runner.status == "successful", text
    assert "no hosts matched" not in text, text
    return text


@pytest.mark.slow
def test_a_hostile_manifest_runs_nothing_on_the_controller(estate: Path, tmp_path: Path) -> None:
    canaries = tmp_path / "canaries"
    canaries.mkdir()
    context = context_of(hostile_estate(estate, canaries))
    plan = make_plan(context, write=False).plan
    known = tmp_path / "known_hosts"
    known.write_text(SOURCE_KEYS)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    inventory = write_inventory(context, plan, SYSTEM, TARGETS, run_dir, known)

    output = run_local_play(tmp_path, inventory)

    assert sorted(os.listdir(canaries)) == [], "a manifest value was run as a template"
    assert "/srv/{{ lookup('pipe', 'touch" in output, "the value arrives as it was written"


@pytest.mark.slow
def test_the_transfer_extra_vars_are_not_templates(estate: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    canaries = tmp_path / "canaries"
    canaries.mkdir()
    monkeypatch.setenv("MIGRATE_STATE_DIR", str(tmp_path / "state"))
    loaded = open_estate(estate)
    system = loaded.systems[SYSTEM]
    exchange = system.exchange.model_copy(
        update={"app_key": canary_lookup(canaries, "app-key")})
    loaded.systems[SYSTEM] = system.model_copy(update={"exchange": exchange})
    secrets = estate / "secrets"
    secrets.mkdir(mode=0o700)
    for name in ("ssh-wjw", "db-fybj", "exchange-wjw-fybj"):
        (secrets / name).write_text("a-secret-of-the-test-0123456789\n")
        (secrets / name).chmod(0o600)
    known = tmp_path / "known_hosts"
    known.write_text(SOURCE_KEYS)
    monkeypatch.setattr(inv, "source_known_hosts_of", lambda _context: known)
    context = context_for_plan(loaded, make_plan(context_of(loaded), write=False).plan)

    session = open_session(context, SYSTEM, TARGETS, "check_prerequisites", None)
    play = ("- hosts: all\n  gather_facts: false\n  tasks:\n"
            "    - ansible.builtin.debug:\n"
            "        msg: \"{{ exchange.app_key }} {{ migrate_key_file }}\"\n")
    run_local_play(tmp_path, session.inventory, session.extravars, play)

    assert sorted(os.listdir(canaries)) == [], "an extra var was run as a template"


def test_validate_refuses_template_markup_in_every_field_that_reaches_plays(
        run_cli, estate: Path) -> None:
    path = estate / "systems" / f"{SYSTEM}.yaml"
    lookup = "{{ lookup('pipe','id > /tmp/x') }}"
    edit(path, "path: /srv/fybj/certificates", f'path: "/srv/{lookup}"')
    edit(path, "health: /health", f'health: "/{lookup}"')
    edit(path, "path: /opt/legacy/app.py", 'path: "/opt/{% raw %}app.py"')
    edit(path, "file: /etc/legacy/fybj-web.json", 'file: "/etc/legacy/{# x #}.json"')
    edit(path, "old: '\"host\": \"192.168.90.22\"'", f'old: "{lookup}"')
    edit(path, "new: '\"host\": \"${db}\"'", "new: '{% if 1 %}x{% endif %}'")
    edit(path, "user: root", "user: \"r{{ 'oot' }}\"")
    edit(path, "share_condition: 仅限", "share_condition: '{{ 7*7 }}' # 仅限")

    result = run_cli("validate", estate)

    assert result.code == 2, result.stderr
    assert "Traceback" not in result.stderr
    for needle, field in (("/srv/{{", "workload.files[0].path"),
                          ("health:", "workload.services[0].health"),
                          ("{% raw %}", "workload.configuration[0].path"),
                          ("{# x #}", "workload.rewrites[0].file"),
                          ("old: ", "workload.rewrites[0].old"),
                          ("new: ", "workload.rewrites[0].new"),
                          ("user: ", "source.ssh.user"),
                          ("share_condition:", "exchange.resources[0].share_condition")):
        assert f"{path}:{line_number(path, needle)}: {field}" in result.stderr, \
            f"{field} not named:\n{result.stderr}"
    assert "template markup" in result.stderr
    assert not (estate / ".migrate").exists()
