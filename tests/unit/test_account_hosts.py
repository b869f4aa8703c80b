"""What the moves derive from the plan for an application that names its own server: the
MariaDB account hosts that are a source host's address become the planned address of the
instance replacing that host (the application logs in from there), the timers among the
copied unit files move with the services, and the journal says which accounts were mapped."""

from __future__ import annotations

from migrate.adapters.ansible import PlayResult
from migrate.adapters.inventory import account_hosts, timers_of
from migrate.stages.move.transfer import ACCOUNTS_MAPPED, accounts_mapped
from tests.unit.example_inventory import example_inventory

SYSTEM = {
    "instances": [{"name": "app", "address": "10.177.0.21", "replaces": ["app01", "db01"]},
                  {"name": "web", "address": "10.177.0.22", "replaces": ["web01"]}],
    "source_hosts": [{"name": "app01", "address": "192.168.177.11", "moves_to": "app"},
                     {"name": "db01", "address": "192.168.177.12", "moves_to": "app"},
                     {"name": "web01", "address": "192.168.177.13", "moves_to": "web"}],
}


def test_each_source_address_maps_to_the_planned_address_of_the_instance_replacing_it():
    assert account_hosts(SYSTEM) == [["192.168.177.11", "10.177.0.21"],
                                     ["192.168.177.12", "10.177.0.21"],
                                     ["192.168.177.13", "10.177.0.22"]]


def test_the_timers_are_the_timer_unit_files_among_the_configuration():
    paths = ["/etc/systemd/system/xmsb-cleanup.timer",
             "/etc/systemd/system/timers.target.wants/xmsb-cleanup.timer",  # the same timer
             "/etc/systemd/system/xmsb-cleanup.service", "/usr/local/bin/xmsb-cleanup",
             "/etc/systemd/system/a.timer", "/srv/app/b.timer",  # not a unit file
             "/etc/systemd/system/-x.timer", "/etc/systemd/system/o'q.timer"]  # not plain names
    assert timers_of(paths) == ["a.timer", "xmsb-cleanup.timer"]
    assert timers_of([]) == []


def test_the_journal_says_which_accounts_were_mapped_per_host_and_user():
    play = PlayResult("prepare_target", "successful", records={ACCOUNTS_MAPPED: {
        "app01": {"xmsb": "192.168.177.11 10.177.0.21\n", "report": ""},
        "web01": {"web": "192.168.177.13 10.177.0.22\n192.168.177.11 10.177.0.21"}}})
    assert accounts_mapped(play) == {
        "app01": {"report": {}, "xmsb": {"192.168.177.11": "10.177.0.21"}},
        "web01": {"web": {"192.168.177.13": "10.177.0.22",
                          "192.168.177.11": "10.177.0.21"}}}
    assert accounts_mapped(PlayResult("prepare_target", "successful")) == {}


def test_the_inventory_maps_to_planned_addresses_and_names_the_timers(estate, tmp_path):
    system, document = example_inventory(estate, tmp_path, "wjw-fybj")
    planned = {i["name"]: i["address"] for i in system["instances"]}
    assert document["vars"]["account_hosts"] == [
        [h["address"], planned[h["moves_to"]]] for h in system["source_hosts"]]
    hosts = {**document["children"]["source"]["hosts"], **document["children"]["target"]["hosts"]}
    assert all(host["timers"] == [] for host in hosts.values())  # no timer unit copied


def load_probe():
    import importlib.util
    from pathlib import Path

    path = (Path(__file__).resolve().parents[2]
            / "playbooks/roles/check_prerequisites/files/probe_source.py")
    spec = importlib.util.spec_from_file_location("probe_source", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_probe_logs_in_over_the_address_the_accounts_name(monkeypatch) -> None:
    """The check of the application's password: its account allows only the server's own
    address (the JDBC URL names it), so a login over the unix socket (localhost) is refused
    and the one over TCP to that address decides."""
    probe = load_probe()
    calls: list[tuple[list[str], dict | None]] = []

    def run(argv, stdin="", env=None):
        calls.append((argv, env))
        if "--execute" not in argv:  # root's lookup of the accounts' hosts
            return 0, "localhost\n192.168.177.11\n%\nfgw-app01", ""
        return (0, "", "") if "--host" in argv else (1, "", "Access denied for 'xmsb'")

    monkeypatch.setattr(probe, "run", run)
    database = {"name": "xmsb", "user": "xmsb", "engine": "mariadb"}
    problems: list[str] = []
    probe.check_mariadb_logins([database], ["pw-0123456789"], "app01", problems)
    assert problems == []
    logins = [argv for argv, _ in calls if "--execute" in argv]
    assert [argv[argv.index("--host") + 1] for argv in logins if "--host" in argv] == [
        "192.168.177.11"]
    assert all("pw-0123456789" not in " ".join(argv) for argv, _ in calls)
    assert {env["MYSQL_PWD"] for argv, env in calls if "--execute" in argv} == {"pw-0123456789"}

    monkeypatch.setattr(probe, "run", lambda argv, stdin="", env=None: (
        (0, "192.168.177.11", "") if "--execute" not in argv else (1, "", "Access denied")))
    probe.check_mariadb_logins([database], ["wrong"], "app01", problems)
    assert len(problems) == 1 and "refused user xmsb" in problems[0]
