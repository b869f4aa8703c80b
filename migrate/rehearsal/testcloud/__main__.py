"""``python -m migrate.rehearsal.testcloud up|down|stop|status|smoke`` (as root).

up      build or reuse the cached images, boot the machine, configure every service
        not configured yet (--again PHASE: that phase too), write clouds.yaml; prints
        timings (JSON)
stop    shut the machine down, keep its state (``up`` boots it again quickly)
down    stop and remove the machine, its state and its bridges (images stay cached)
status  machine, bridges, services through the API, memory and CPU of the machine
smoke   boot one instance on the provider network, time it to ssh-ready, delete it
routes  route the tenant subnets inside the CIDRs given (an estate's zones) through their
        routers' gateways as they appear, until interrupted; then remove those routes
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from migrate.core.errors import InvalidInput, MigrateError, Problem
from migrate.rehearsal.testcloud import api, routes, services, smoke
from migrate.rehearsal.testcloud import image as tc_image
from migrate.rehearsal.testcloud import machine as tc_machine


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m migrate.rehearsal.testcloud")
    parser.add_argument("command", choices=("up", "down", "stop", "status", "smoke", "routes"))
    parser.add_argument("cidrs", nargs="*", metavar="CIDR", help="routes: the zones to route")
    parser.add_argument("--root", help="state directory (default /var/lib/migrate/testcloud)")
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--again", action="append", default=[], choices=services.PHASES,
                        metavar="PHASE", help="up: run this phase even if it completed "
                        "before (after a change of aio.sh); repeatable")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    root = tc_machine.cloud_root(args.root)
    try:
        result = COMMANDS[args.command](root, args)
    except MigrateError as error:
        print(f"error: {error}", file=sys.stderr)
        hint = getattr(error, "hint", None)
        if hint:
            print(f"hint: {hint}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, default=str))
    return 0


def _up(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    return asdict(services.up(root, again=tuple(args.again)))


def _down(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    services.down(root)
    return {"down_s": round(time.monotonic() - started, 1),
            "bridges_left": tc_machine.bridges_present()}


def _stop(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    services.ensure_stopped(root)
    return {"stop_s": round(time.monotonic() - started, 1)}


def _session(root: Path) -> api.Session:
    cloud = yaml.safe_load((root / "clouds.yaml").read_text())["clouds"][services.CLOUD_NAME]
    return api.Session.from_cloud(cloud).authenticate()


def _status(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    m = tc_machine.Machine(root, tc_image.image_path())
    result: dict[str, Any] = {
        "machine": m.status(),
        "bridges": tc_machine.bridges_present(),
        "image": str(tc_image.image_path()),
        "image_built": tc_image.is_built(tc_image.image_path()),
        "image_build": tc_image.build_timings(tc_image.image_path()),
    }
    if m.status() != "running" or not (root / "clouds.yaml").exists():
        return result
    session = _session(root)
    result["token_expires"] = session.issued.get("expires_at")
    result["services"] = sorted(s["type"] for s in session.get("identity", "/services")
                                ["services"])
    result["compute_services"] = [
        f"{s['binary']}:{s['state']}" for s in session.get("compute", "/os-services")["services"]
    ]
    result["network_agents"] = [
        f"{a['binary']}:{'up' if a['alive'] else 'down'}"
        for a in session.get("network", "/v2.0/agents")["agents"]
    ]
    result["idle"] = services.idle_usage(root, args.idle_seconds)
    return result


def _routes(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    if not args.cidrs:
        raise InvalidInput([Problem("<command line>", None, "cidrs", "name the zones to route",
                                    "e.g. routes 10.252.0.0/16")])
    keeper = routes.RouteKeeper(lambda: _session(root), args.cidrs)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # kill: the routes go too
    with keeper, contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()
    return {"routes_removed": sorted(f"{r.cidr} via {r.via}" for r in keeper.made)}


def _smoke(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    session = _session(root)
    name = f"mgos-smoke-{int(time.time())}"
    return asdict(smoke.boot_instance(session, name))


COMMANDS = {"up": _up, "down": _down, "stop": _stop, "status": _status, "smoke": _smoke,
            "routes": _routes}

if __name__ == "__main__":
    sys.exit(main())
