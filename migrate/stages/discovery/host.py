"""Discovery of one source host: every probe in turn over one session, timed, failures
recorded next to what the other probes found (never one problem at a time)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from migrate.adapters.access import SourceSession
from migrate.core.errors import MigrateError
from migrate.stages.discovery import probes

# Units that serve the machine, not an application: not proposed as services.
INFRASTRUCTURE_UNITS = ("ssh.service", "sshd.service", "systemd-resolved.service",
                        "chronyd.service", "chrony.service", "ntp.service", "cron.service",
                        "exim4.service", "postfix.service", "rpcbind.service",
                        "systemd-networkd.service", "rsyslog.service")
DATABASE_UNIT_PREFIXES = ("postgresql", "mariadb", "mysql")
Progress = Callable[[str], None]


def is_application_unit(unit: str | None) -> bool:
    return bool(unit) and unit not in INFRASTRUCTURE_UNITS and not unit.startswith(
        DATABASE_UNIT_PREFIXES)  # type: ignore[union-attr]


def discover_host(session: SourceSession, address: str, declared_paths: Iterable[str] = (),
                  progress: Progress = lambda _line: None,
                  system_addresses: Iterable[str] = (),
                  watch_s: int = probes.WATCH_S) -> dict[str, Any]:
    """What is on the host: ``{"observed": {...}, "probe_errors": [...], "timings_s": {...}}``."""
    observed: dict[str, Any] = {}
    errors: list[dict[str, str]] = []
    timings: dict[str, float] = {}

    def run(name: str, probe: Callable[[], Any]) -> Any:
        progress(f"{address}: {name}")
        started = time.monotonic()
        try:
            observed[name] = probe()
        except MigrateError as error:
            observed[name] = None
            errors.append({"probe": name, "message": error.message})
        timings[name] = round(time.monotonic() - started, 3)
        return observed[name]

    run("os", lambda: probes.probe_os(session))
    run("hardware", lambda: probes.probe_hardware(session))
    run("packages", lambda: probes.probe_packages(session))
    listening = run("listening", lambda: probes.probe_listening(session)) or []
    run("running_units", lambda: probes.probe_running_units(session))
    sockets = run("unix_sockets", lambda: probes.probe_unix_sockets(session)) or []
    units = run("units", lambda: probes.probe_units(
        session, [*(e["unit"] for e in listening if is_application_unit(e.get("unit"))),
                  *(s["unit"] for s in sockets if is_application_unit(s.get("unit")))])) or []
    web_roots = run("web_roots", lambda: probes.probe_web_roots(session)) or []
    app_dirs = sorted({*application_directories(units), *web_roots})
    run("data_directories",
        lambda: probes.probe_data_directories(session, [*app_dirs, *declared_paths]))
    window = probes.Window(watch_s)
    run("postgresql", lambda: probes.read_postgresql(session, window))
    run("mariadb", lambda: probes.read_mariadb(session, window))
    watch(window, address, progress, errors, timings)
    timers = run("timers", lambda: probes.probe_timers(session)) or []
    run("runtime_modules", lambda: probes.probe_runtime_modules(session))
    tomcat = run("tomcat", lambda: probes.probe_tomcat(session)) or {}
    read_dirs = sorted({*app_dirs, *(w.rstrip("/") for w in tomcat.get("webapps", [])
                                     if w.endswith("/"))})
    run("cron", lambda: probes.probe_cron(session))
    run("web_access", lambda: probes.probe_web_access(session))
    named = sorted({address, *system_addresses})
    run("address_mentions", lambda: probes.probe_address_mentions(session, named, read_dirs))
    run("database_references", lambda: probes.probe_database_references(session, read_dirs))
    run("secrets", lambda: probes.probe_secrets(session, read_dirs))
    run("package_owners", lambda: probes.probe_package_owners(
        session, software_paths([*units, *timer_services(timers)], web_roots,
                                observed.get("address_mentions") or [])))
    return {"observed": observed, "probe_errors": errors, "timings_s": timings}


def watch(window: probes.Window, address: str, progress: Progress,
          errors: list[dict[str, str]], timings: dict[str, float]) -> None:
    """Both database engines' watches in their one window: an engine whose second sample
    fails keeps what its probe read, with the failure recorded under its name."""
    if window.pending:
        progress(f"{address}: watch ({window.watch_s} s)")
    started = time.monotonic()
    errors += [{"probe": engine, "message": error.message}
               for engine, error in window.close().items()]
    timings["watch"] = round(time.monotonic() - started, 3)


def timer_services(timers: list[dict]) -> list[dict]:
    """The services the host's own timers (not a package's) trigger."""
    return [service for timer in timers if timer.get("local")
            for service in timer.get("services", [])]


def software_paths(units: list[dict], web_roots: list[str], mentions: list[dict]) -> list[str]:
    """What the application runs and reads: its units' files and programs, the web roots and
    the configuration naming an address; whichever packages own them, the target needs."""
    programs = [str(command).split()[0] for unit in units for command in unit["exec_start"]
                if str(command).strip()]
    return sorted({*(u["fragment"] for u in units if u.get("fragment")), *programs,
                   *web_roots, *(m["file"] for m in mentions)})


def application_directories(units: list[dict]) -> list[str]:
    """Working directories of the application units (not / or root's home); with the web
    servers' document roots, where discovery looks for data, secrets and the address."""
    found = {u["working_directory"] for u in units if u.get("working_directory")}
    return sorted(d for d in found if d not in ("/", "/root"))
