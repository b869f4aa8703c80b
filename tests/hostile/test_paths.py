"""Paths and names that would copy, replace or delete what a move must leave alone are refused
by ``migrate validate``: exit 2, every problem at once with file, line and field, nothing
written."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import edit, line_number

FILES_LINE = "    - {host: web1, path: /srv/fybj/certificates, size_gb: 18, daily_change_gb: 0.1}\n"
CONFIGURATION_LINE = "    - {host: web1, path: /opt/legacy/app.py}\n"


def manifest(estate: Path) -> Path:
    return estate / "systems" / "wjw-fybj.yaml"


def files(*entries: str) -> str:
    return "".join(f"    - {{{entry}, size_gb: 1}}\n" for entry in entries)


def configuration(*entries: str) -> str:
    return "".join(f"    - {{{entry}}}\n" for entry in entries)


def refused(run_cli, estate: Path, *expected: tuple[str, str, str]) -> str:
    """Validate; each (needle on the line, field, message fragment) must be reported."""
    result = run_cli("validate", estate)
    assert result.code == 2, result.stderr
    assert "Traceback" not in result.stderr
    path = manifest(estate)
    for needle, field, fragment in expected:
        location = f"{path}:{line_number(path, needle)}: {field}"
        reported = [line for line in result.stderr.splitlines() if location in line]
        assert reported, f"{location} not reported:\n{result.stderr}"
        assert fragment in reported[0], f"{fragment!r} not in {reported[0]!r}"
    assert not (estate / ".migrate").exists(), "invalid input must change nothing"
    return result.stderr


def test_the_whole_filesystem_and_system_trees_are_refused(run_cli, estate: Path) -> None:
    edit(manifest(estate), FILES_LINE, files("host: web1, path: /", "host: web1, path: /usr",
                                             "host: web1, path: /lib64/"))
    edit(manifest(estate), CONFIGURATION_LINE,
         configuration("host: web1, path: /etc/", "host: web1, path: /var/lib"))
    refused(run_cli, estate,
            ("path: /,", "workload.files[0].path", "the whole filesystem"),
            ("path: /usr,", "workload.files[1].path", "whole system tree /usr"),
            ("path: /lib64/", "workload.files[2].path", "whole system tree /lib64"),
            ("path: /etc/}", "workload.configuration[0].path", "whole system tree /etc"),
            ("path: /var/lib}", "workload.configuration[1].path", "whole system tree /var/lib"))


def test_ssh_folders_and_login_files_are_refused(run_cli, estate: Path) -> None:
    edit(manifest(estate), FILES_LINE, files("host: web1, path: /home/ops"))
    edit(manifest(estate), CONFIGURATION_LINE, configuration(
        "host: web1, path: /root/.ssh/", "host: web1, path: /etc/ssh/sshd_config",
        "host: web1, path: /home/ops/.ssh/authorized_keys", "host: web1, path: /etc/sudoers.d/ops",
        "host: web1, path: /boot/grub"))
    refused(run_cli, estate,
            ("path: /home/ops,", "workload.files[0].path", "ssh folder"),
            ("/root/.ssh/", "workload.configuration[0].path", "ssh folder"),
            ("/etc/ssh/sshd_config", "workload.configuration[1].path", "lies in /etc/ssh"),
            ("/home/ops/.ssh/", "workload.configuration[2].path", "ssh folder"),
            ("/etc/sudoers.d/ops", "workload.configuration[3].path", "lies in /etc/sudoers.d"),
            ("/boot/grub", "workload.configuration[4].path", "lies in /boot"))


def test_the_database_data_directory_is_not_a_file_tree(run_cli, estate: Path) -> None:
    edit(manifest(estate), FILES_LINE, files("host: db1, path: /var/lib/postgresql/15/main"))
    refused(run_cli, estate, ("/var/lib/postgresql/15/main", "workload.files[0].path",
                              "the database server's own data directory"))


def test_overlapping_trees_of_one_target_are_refused(run_cli, estate: Path) -> None:
    edit(manifest(estate), FILES_LINE, files(
        "host: web1, path: /srv/fybj/certificates", "host: web1, path: /srv/fybj/certificates/2026",
        "host: db1, path: /srv/fybj/certificates"))
    edit(manifest(estate), CONFIGURATION_LINE, configuration("host: web1, path: /srv/fybj/"))
    err = refused(run_cli, estate,
                  ("/srv/fybj/certificates/2026", "workload.files[1].path",
                   "overlaps workload.files[0].path (/srv/fybj/certificates) on the same target"),
                  ("path: /srv/fybj/}", "workload.configuration[0].path",
                   "overlaps workload.files[0].path"))
    assert "workload.files[2].path" not in err, "db1 moves to another instance: no overlap"


def test_an_applications_settings_may_lie_in_its_own_files_tree(run_cli, estate: Path) -> None:
    """As discovery proposes for a web application: its web root moves as data and the
    settings file inside it as configuration (rewritten on the target, left out of the
    tree's copy): the same host's bytes either way, so no overlap to refuse."""
    edit(manifest(estate), CONFIGURATION_LINE,
         configuration("host: web1, path: /srv/fybj/certificates/settings.ini"))
    result = run_cli("validate", estate)
    assert result.code == 0, result.stderr


def test_control_characters_and_unplain_paths_are_refused(run_cli, estate: Path) -> None:
    edit(manifest(estate), FILES_LINE, files('host: web1, path: "/srv/fybj/a\\nb"',
                                             "host: web1, path: /srv/fybj/../../etc"))
    edit(manifest(estate), CONFIGURATION_LINE, configuration(
        'host: web1, path: "/opt/legacy/app.py\\t"', "host: web1, path: /opt//legacy"))
    edit(manifest(estate), "old: '\"host\": \"192.168.90.22\"'", 'old: "\\"host\\":\\u2028"')
    edit(manifest(estate), "function: 孕产妇和儿童保健档案、", 'function: "孕产妇\\r"  # ')
    refused(run_cli, estate,
            ("/srv/fybj/a", "workload.files[0].path", "control character '\\n'"),
            ("/srv/fybj/../../etc", "workload.files[1].path", "plain form"),
            ("/opt/legacy/app.py", "workload.configuration[0].path", "control character '\\t'"),
            ("/opt//legacy", "workload.configuration[1].path", "plain form"),
            ("old: ", "workload.rewrites[0].old", "control character '\\u2028'"),
            ("function: ", "function", "control character '\\r'"))


def test_a_unit_starting_with_a_dash_is_refused(run_cli, estate: Path) -> None:
    edit(manifest(estate), "unit: fybj-web.service", "unit: -H.service")
    refused(run_cli, estate, ("unit: -H.service", "workload.services[0].unit",
                              "does not have the required form"))


def test_application_files_inside_system_trees_stay_valid(run_cli, estate: Path) -> None:
    edit(manifest(estate), FILES_LINE, files("host: web1, path: /var/lib/fybj/data",
                                             "host: web1, path: /home/ops/fybj"))
    edit(manifest(estate), CONFIGURATION_LINE, configuration(
        "host: web1, path: /opt/legacy/app.py", "host: web1, path: /etc/nginx/sites-available/fybj",
        "host: web1, path: /etc/systemd/system/fybj-web.service",
        "host: web1, path: /usr/local/lib/fybj/"))
    result = run_cli("validate", estate)
    assert result.code == 0, result.stderr
