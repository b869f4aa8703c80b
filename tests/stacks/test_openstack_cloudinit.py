"""The instances' first-boot user data: data only, the operator key for root, and the data
volumes listed by serial for files/migrate-volumes."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import yaml

PROGRAM = Path(__file__).resolve().parents[2] / "stacks" / "openstack"


def load_cloudinit():
    spec = importlib.util.spec_from_file_location("stack_cloudinit", PROGRAM / "cloudinit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBz+0aRIxWx+ZjjBptww7tVqo3d7RvSk/XJMgxUWXP8N op"


def test_root_gets_the_operator_key_and_no_password_logins():
    text = load_cloudinit().render([KEY], [])
    assert text.startswith("#cloud-config\n")
    document = yaml.safe_load(text)
    assert document["ssh_authorized_keys"] == [KEY]
    assert document["disable_root"] is False and document["ssh_pwauth"] is False
    assert "runcmd" not in document and "write_files" not in document


def test_volumes_are_listed_as_data_for_the_script_run_at_first_boot():
    cloudinit = load_cloudinit()
    hostile = "/srv/{{ lookup('pipe', 'id') }}"  # validation refuses it; here it stays text
    document = yaml.safe_load(cloudinit.render([KEY], [("0123456789abcdef0123", "/srv/a"),
                                                       ("fedcba9876543210fedc", hostile)]))
    files = {f["path"]: f for f in document["write_files"]}
    listing = json.loads(files[cloudinit.VOLUMES_PATH]["content"])
    assert listing == [{"serial": "0123456789abcdef0123", "mount": "/srv/a"},
                       {"serial": "fedcba9876543210fedc", "mount": hostile}]
    assert files[cloudinit.SCRIPT_PATH]["content"] == cloudinit.SCRIPT.read_text()
    assert document["runcmd"] == [[cloudinit.SCRIPT_PATH]]  # an argv: no shell


def test_names_no_dns_serves_are_appended_to_etc_hosts_as_data():
    document = yaml.safe_load(load_cloudinit().render(
        [KEY], [], {"exchange.example.gov.cn": "10.40.0.10", "mirror.example": "10.40.0.1"}))
    (hosts,) = document["write_files"]
    assert hosts["path"] == "/etc/hosts" and hosts["append"] is True
    assert hosts["content"] == "10.40.0.10 exchange.example.gov.cn\n10.40.0.1 mirror.example\n"
    assert "runcmd" not in document  # nothing is run for it


def test_the_guest_script_refuses_a_mount_point_that_is_not_plain(tmp_path):
    """The script checks its list itself before touching any disk."""
    script = (PROGRAM / "files" / "migrate-volumes").read_text()
    listing = tmp_path / "volumes.json"
    for entry in ({"serial": "0123456789abcdef0123", "mount": "/srv/a b"},
                  {"serial": "0123456789abcdef0123", "mount": "/srv/../etc"},
                  {"serial": "$(id)", "mount": "/srv/a"}):
        listing.write_text(json.dumps([entry]))
        patched = script.replace('VOLUMES = "/etc/migrate/volumes.json"',
                                 f"VOLUMES = {str(listing)!r}")
        done = subprocess.run([sys.executable, "-c", patched], capture_output=True, text=True,
                              check=False)
        assert done.returncode == 1 and "refused entry" in done.stderr, entry


def test_the_clouds_time_servers_go_to_the_images_ntp_client():
    document = yaml.safe_load(load_cloudinit().render([KEY], [], None, ["10.30.0.5", "10.30.0.6"]))
    assert document["ntp"] == {"enabled": True, "servers": ["10.30.0.5", "10.30.0.6"]}
    assert "ntp" not in yaml.safe_load(load_cloudinit().render([KEY], [], None, []))
