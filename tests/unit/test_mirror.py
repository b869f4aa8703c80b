"""The package mirror's configuration and the estate setting that names a cloud's mirror
(no root needed; tests/mirror boots machines that install through a real one)."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrate.core.errors import StageFailed
from migrate.core.loader import load_estate
from migrate.rehearsal.sandbox import mirror
from tests.conftest import edit, line_number


def config_lines(address: str = "192.168.177.193") -> dict[str, list[str]]:
    text = mirror.config_text(address, 3142, Path("/var/cache/migrate/mirror/t"))
    lines: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.split(":", 1)
            lines.setdefault(key, []).append(value.strip())
    return lines


def test_the_mirror_listens_on_the_bridge_address_only():
    assert config_lines("192.168.177.193")["BindAddress"] == ["192.168.177.193"]
    assert config_lines()["Port"] == ["3142"]


def test_the_mirror_serves_one_archive_from_one_upstream_and_refuses_the_rest():
    lines = config_lines()
    remaps = {key: value for key, value in lines.items() if key.startswith("Remap-")}
    assert remaps == {"Remap-debrep": ["/debian ; file:backends_debian"]}
    assert lines["ForceManaged"] == ["1"]  # a location that is not remapped is refused
    assert lines["PassThroughPattern"] == ["^$"]  # no CONNECT tunnels
    assert lines["RedirMax"] == ["0"]
    assert mirror.UPSTREAM == "http://deb.debian.org/debian/"


def test_packages_and_logs_stay_in_the_mirror_folder():
    lines = config_lines()
    assert lines["CacheDir"] == ["/var/cache/migrate/mirror/t/packages"]
    assert lines["LogDir"] == ["/var/cache/migrate/mirror/t/log"]
    assert lines["ForeGround"] == ["1"]


def test_machines_name_the_mirror_as_their_only_source():
    url = mirror.mirror_url("192.168.177.193")
    assert url == "http://192.168.177.193:3142/debian"
    entries = [line for line in mirror.apt_sources_text(url).splitlines()
               if line and not line.startswith("#")]
    assert entries == ["deb http://192.168.177.193:3142/debian bookworm main"]


def test_apt_sources_are_written_into_a_machine_root(tmp_path: Path):
    path = mirror.write_apt_sources(tmp_path, "http://mirror.egov.local/debian")
    assert path == tmp_path / "etc/apt/sources.list"
    assert "deb http://mirror.egov.local/debian bookworm main\n" in path.read_text()
    assert path.stat().st_mode & 0o777 == 0o644


def test_transfer_log_lines_sent_to_clients():
    log = ("1796153531|I|151287|192.168.177.200|debrep/dists/bookworm/InRelease\n"
           "1796153531|O|151293|192.168.177.200|debrep/dists/bookworm/InRelease\n"
           "1796153531|E|832|192.168.177.200| [HTTP error, code: 403]\n"
           "garbage\n"
           "1796153532|O|5127|192.168.177.200|debrep/pool/main/t/tree/tree_2.1.0-1_amd64.deb\n")
    assert mirror.parse_transfer_log(log) == [
        ("192.168.177.200", "debrep/dists/bookworm/InRelease"),
        ("192.168.177.200", "debrep/pool/main/t/tree/tree_2.1.0-1_amd64.deb"),
    ]


def test_listening_sockets_are_read_from_the_tcp_table():
    table = (
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt"
        "   uid  timeout inode\n"
        "   0: C1B1A8C0:0C46 00000000:0000 0A 00000000:00000000 00:00000000 00000000"
        "   102        0 91234 1 0000000000000000 100 0 0 10 0\n"
        "   1: 0100007F:0016 0200007F:D431 01 00000000:00000000 00:00000000 00000000"
        "     0        0 91240 1 0000000000000000 20 4 30 10 -1\n")
    assert mirror.parse_listening(table) == [(("192.168.177.193", 3142), "91234")]


def test_a_mirror_process_is_known_by_its_configuration_folder():
    argv = ["/usr/sbin/apt-cacher-ng", "-c", "/var/cache/migrate/mirror/t/conf"]
    assert mirror.conf_dir_of(argv) == Path("/var/cache/migrate/mirror/t/conf")
    assert mirror.conf_dir_of(["/usr/sbin/apt-cacher-ng"]) is None  # the packaged daemon


def test_mirror_folders_are_per_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    assert mirror.mirror_dir("t", tmp_path) == tmp_path / "t"
    monkeypatch.setenv("MIGRATE_MIRROR_CACHE", str(tmp_path / "elsewhere"))
    assert mirror.mirror_dir("t") == tmp_path / "elsewhere/t"
    monkeypatch.delenv("MIGRATE_MIRROR_CACHE")
    assert mirror.mirror_dir("t") == Path("/var/cache/migrate/mirror/t")
    for bad in ("", "../x", "A", "a/b"):
        with pytest.raises(StageFailed, match="invalid mirror name"):
            mirror.mirror_dir(bad)


# ---- the estate setting -------------------------------------------------------------


def use_openstack(estate: Path) -> None:
    edit(estate / "migrate.yaml", "target: sandbox ", "target: openstack ")


def test_an_openstack_estate_names_its_clouds_mirror(estate: Path):
    use_openstack(estate)
    edit(estate / "migrate.yaml", "  ops_network:",
         "  packages: {mirror: http://mirror.egov.local/debian}\n  ops_network:")
    loaded = load_estate(estate)
    assert loaded.settings.cloud.packages is not None
    assert loaded.settings.cloud.packages.mirror == "http://mirror.egov.local/debian"


def test_the_mirror_is_optional(estate: Path):
    assert load_estate(estate).settings.cloud.packages is None


def test_a_mirror_that_is_not_an_http_url_is_refused_with_its_line(run_cli, estate: Path):
    use_openstack(estate)
    edit(estate / "migrate.yaml", "  ops_network:",
         "  packages: {mirror: ftp.egov.local}\n  ops_network:")
    result = run_cli("validate", estate)
    assert result.code == 2, result.stderr
    line = line_number(estate / "migrate.yaml", "packages:")
    assert f"migrate.yaml:{line}: cloud.packages.mirror" in result.stderr
    assert "http:// or https:// URL of a Debian archive" in result.stderr


def test_a_sandbox_estate_does_not_name_a_mirror(run_cli, estate: Path):
    edit(estate / "migrate.yaml", "  ops_network:",
         "  packages: {mirror: http://mirror.egov.local/debian}\n  ops_network:")
    result = run_cli("validate", estate)
    assert result.code == 2, result.stderr
    line = line_number(estate / "migrate.yaml", "packages:")
    assert f"migrate.yaml:{line}: cloud.packages" in result.stderr
    assert "the sandbox runs the cloud's package mirror" in result.stderr
