"""Benchmark: the same estate moved by `migrate run` on the sandbox cloud and on OpenStack (the
test cloud on this host), time per stage side by side, with the ratio openstack/sandbox per
stage and for the whole run; then a second run on each side, which must change nothing.

The estate is tests/testcloud/run_estate (mzj-tcjz at level 2, wjw-tcbj at level 3), each
side from a fresh copy. OpenStack side: as the copy stands (`cloud.target: openstack`,
`sandbox.surroundings: true`), with an operator key and a stack passphrase of its own, and
host routes to the department networks kept while it runs (`RouteKeeper`). Sandbox side:
the same copy with `cloud.target: sandbox`, without `cloud.packages` (the sandbox runs its
own mirror) and without `sandbox.surroundings`, on the example estate's networks: the run
estate's ops network is the test cloud's provider network on this host (the sandbox refuses
a bridge there) and its allowed networks are the test cloud's. Flavors and images stay (the
sandbox sizes machines from the plan, not by flavor or image name).

Each run is a subprocess, as a user types it; the per-stage figures come from the run's own
summary (`--output json`), its stage lines go to a log beside the copy. Everything is
destroyed afterwards (`migrate destroy --yes`, `migrate sandbox down`; not timed), even on
failure; the copies are removed unless something failed (then their .migrate/runs is where
to look). Needs root, the sandbox images, the built engine and plugin, and the test cloud up
(`python -m migrate.rehearsal.testcloud status`). It holds the locks the end-to-end tests use,
/tmp/migrate-sandbox.lock then /tmp/migrate-testcloud.lock, for both sides (same conditions
on both: nobody else's runs on the test cloud or the sandbox meanwhile), waiting for them;
before that it waits (--wait-minutes) while another estate's sandbox holds its bridges.

    .venv/bin/python bench/bench_targets.py [--json FILE] [--wait-minutes N]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
MIGRATE = str(Path(sys.executable).parent / "migrate")
ESTATE = ROOT / "tests" / "testcloud" / "run_estate"
CLOUDS_YAML = Path("/var/lib/migrate/testcloud/clouds.yaml")
LOCKS = (Path("/tmp/migrate-sandbox.lock"), Path("/tmp/migrate-testcloud.lock"))  # this order
SIDES = ("sandbox", "openstack")  # baseline first

# (pattern, replacement) on migrate.yaml's text for the sandbox side; each must match once
SANDBOX_EDITS = (
    (r"(?m)^(  target: )openstack\b", r"\1sandbox"),
    (r"(?m)^  packages:\n    mirror: .*\n", ""),
    (r"(?m)^  surroundings: true.*\n", ""),
    (r"(?m)^(    internet: +\{cidr: )10\.251\.0\.0/16\}", r"\g<1>10.10.0.0/16}"),
    (r"(?m)^(    egov_extranet: \{cidr: )10\.252\.0\.0/16\}", r"\g<1>10.20.0.0/16}"),
    (r"(?m)^(  ops_network: )10\.253\.1\.0/24", r"\g<1>10.30.0.0/24"),
    (r"(?m)^(  allowed_networks: )\[.*\]", r"\1[]"),
)


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


@contextmanager
def held(path: Path) -> Iterator[None]:
    """An exclusive flock on ``path`` (as flock(1) takes it), waited for, never broken."""
    with open(path, "a", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            started = time.monotonic()
            log(f"waiting for {path} (held by another run)")
            fcntl.flock(handle, fcntl.LOCK_EX)
            log(f"got {path} after {time.monotonic() - started:.0f} s")
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def migrate(env: dict[str, str], logfile: Path, *args: str) -> tuple[float, int, dict | None]:
    """`migrate ARGS` as a user types it: seconds, exit code, the JSON it printed (if any);
    its stage lines are appended to ``logfile``."""
    with open(logfile, "a", encoding="utf-8") as err:
        err.write(f"\n$ migrate {' '.join(args)}\n")
        err.flush()
        started = time.monotonic()
        done = subprocess.run([MIGRATE, *args], stdout=subprocess.PIPE, stderr=err, text=True,
                              env=env)
        seconds = time.monotonic() - started
    try:
        document = json.loads(done.stdout) if done.stdout.strip() else None
    except json.JSONDecodeError:
        document = None
    return seconds, done.returncode, document


def tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# ------------------------------------------------------------------ the two copies


def sandbox_copy(estate: Path) -> None:
    settings = estate / "migrate.yaml"
    text = settings.read_text()
    for pattern, replacement in SANDBOX_EDITS:
        text, count = re.subn(pattern, replacement, text)
        if count != 1:
            raise SystemExit(f"{ESTATE}/migrate.yaml changed: {pattern!r} matched {count} times;"
                             " adapt SANDBOX_EDITS")
    settings.write_text(text)


def openstack_copy(estate: Path) -> None:
    """The operator key and stack passphrase the run estate's test makes (0600 each)."""
    (estate / "keys").mkdir(mode=0o700)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "operator@bench",
                    "-f", str(estate / "keys" / "operator")], check=True)
    state = estate / ".migrate"
    state.mkdir(mode=0o700)
    passphrase = state / "pulumi-passphrase"
    passphrase.touch(mode=0o600)
    passphrase.write_text(os.urandom(24).hex() + "\n")
    passphrase.chmod(0o600)


def validated(estate: Path, env: dict[str, str], logfile: Path) -> None:
    _, code, _ = migrate(env, logfile, "validate", str(estate))
    if code != 0:
        raise SystemExit(f"migrate validate {estate} exited {code}:\n{tail(logfile)}")


# ------------------------------------------------------------------ the test cloud


def cloud_session(clouds_yaml: Path) -> Any:
    from migrate.rehearsal.testcloud import api, services

    clouds = yaml.safe_load(clouds_yaml.read_text())
    return api.Session.from_cloud(clouds["clouds"][services.CLOUD_NAME]).authenticate()


class Skipping:
    """A session whose router list leaves out the routers that were there before the run
    (another estate's, left up): their subnets may be this estate's too, and the host can
    route a subnet through one gateway only."""

    def __init__(self, session: Any, skip: set[str]) -> None:
        self.session, self.skip = session, skip

    def get(self, service: str, path: str) -> dict:
        found = self.session.get(service, path)
        if service == "network" and path == "/v2.0/routers":
            found = {**found, "routers": [r for r in found["routers"]
                                          if r["id"] not in self.skip]}
        return found


def foreign(session: Any) -> dict[str, list[str]]:
    """What the project holds before the run (the end-to-end tests leave it empty)."""
    return {"servers": sorted(s["name"] for s in session.get("compute", "/servers")["servers"]),
            "routers": sorted(r["id"] for r in session.get("network", "/v2.0/routers")["routers"])}


@contextmanager
def routed(estate: Path, clouds_yaml: Path, skip: set[str]) -> Iterator[Any]:
    """Host routes to the estate's department networks while the runs run."""
    from migrate.rehearsal.testcloud import routes

    zones = [z["cidr"] for z in
             yaml.safe_load((estate / "migrate.yaml").read_text())["cloud"]["zones"].values()]
    with routes.RouteKeeper(lambda: Skipping(cloud_session(clouds_yaml), skip), zones) as keeper:
        yield keeper


# ------------------------------------------------------------------ one side


def figures(label: str, wall: float, code: int, summary: dict | None) -> dict:
    if summary is None:
        return {"run": label, "wall_s": round(wall, 1), "exit": code, "ok": False,
                "error": "no summary (the run stopped before its first stage?)"}
    return {"run": label, "wall_s": round(wall, 1), "exit": code,
            "run_s": round(summary["seconds"], 1), "ok": summary["ok"],
            "changed_nothing": summary["changed_nothing"], "error": summary["error"],
            "failed": summary["failed"], "stage_seconds": summary["stage_seconds"],
            "run_wide": summary["stages"],
            "waves": [{"number": w["number"], "systems": len(w["systems"]),
                       "workers": w.get("workers"), "seconds": w["seconds"]}
                      for w in summary["waves"]],
            "systems": {s["system"]: {"outcome": s["outcome"], "failed_stage": s["failed_stage"],
                                      "error": s["error"], "stages": s["stages"]}
                        for s in summary["systems"]},
            "warnings": summary["warnings"]}


def run_dirs(estate: Path, row: dict) -> dict[str, str]:
    """The newest run folder of each failed system's failed stage (or of the system)."""
    found = {}
    runs = estate / ".migrate" / "runs"
    for sid, system in (row.get("systems") or {}).items():
        if not system["failed_stage"]:
            continue
        mine = sorted(runs.glob(f"*-{sid}-{system['failed_stage']}-*")) or \
            sorted(runs.glob(f"*-{sid}-*"))
        found[sid] = str(mine[-1]) if mine else "(no run folder)"
    return found


def prepared(side: str, folder: Path, clouds_yaml: Path) -> tuple[Path, dict[str, str]]:
    """The side's fresh copy of the estate, and the environment its runs get."""
    estate = folder / side
    shutil.copytree(ESTATE, estate, ignore=shutil.ignore_patterns(".migrate", "secrets",
                                                                  "certs", "keys"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env["MIGRATE_SANDBOX_ROOT"] = str(folder / f"{side}-sandbox-root")
    if side == "sandbox":
        sandbox_copy(estate)
    else:
        openstack_copy(estate)
        env["OS_CLIENT_CONFIG_FILE"] = str(clouds_yaml)
    validated(estate, env, folder / f"{side}.log")
    return estate, env


def bridges_in_use(estates: list[Path]) -> list[str]:
    """Bridges these estates' sandboxes need that are already on the host: another
    estate's sandbox left up (its machines have the same addresses); theirs would refuse."""
    from migrate.orchestrate.pipeline import open_estate
    from migrate.rehearsal.sandbox import network
    from migrate.rehearsal.sandbox.estate_plan import plan_sandbox

    needed = {b.device for e in estates for b in plan_sandbox(open_estate(e)).bridges}
    return sorted(needed & {b.name for b in network.list_bridges()})


def one_side(side: str, estate: Path, env: dict[str, str], clouds_yaml: Path,
             keep: bool) -> dict:
    logfile = estate.parent / f"{side}.log"
    result: dict[str, Any] = {"side": side, "estate": str(estate), "log": str(logfile),
                              "runs": [], "cleanup": {}}
    with ExitStack() as stack:
        if side == "openstack":
            before = foreign(cloud_session(clouds_yaml))
            result["project_before"] = before
            if before["servers"] or before["routers"]:
                log(f"warning: the test cloud's project already holds {len(before['servers'])}"
                    f" servers and {len(before['routers'])} routers (another estate's, left up):"
                    " they share the cores; their routers are left out of the host routes")
        try:
            keeper = stack.enter_context(routed(estate, clouds_yaml,
                                                set(result["project_before"]["routers"]))) \
                if side == "openstack" else None
            for label in ("first run (fresh copy)", "second run (nothing to do)"):
                log(f"{side}: {label} ... (stage lines: {logfile})")
                wall, code, summary = migrate(env, logfile, "run", str(estate), "--yes",
                                              "--output", "json")
                row = figures(label, wall, code, summary)
                result["runs"].append(row)
                show(side, row)
                if not row["ok"]:
                    row["run_dirs"] = run_dirs(estate, row)
                    row["log_tail"] = tail(logfile)
                    log(f"{side}: {label} failed (exit {code}); run folders: "
                        f"{row['run_dirs'] or '-'}\n{row['log_tail']}")
                    break
            if keeper is not None:
                result["routes_made"] = sorted(r.cidr for r in keeper.made)
                result["route_failures"] = keeper.failures
        finally:
            stack.close()  # the routes go first: destroy reaches no instance
            if not keep:
                started = time.monotonic()
                for args in (("destroy", str(estate), "--yes", "--leave-source-traces"),
                             ("sandbox", "down", str(estate))):
                    _, code, _ = migrate(env, logfile, *args)
                    result["cleanup"][args[0]] = code
                    if code != 0:
                        log(f"{side}: migrate {' '.join(args)} exited {code}:\n{tail(logfile)}")
                result["cleanup"]["seconds"] = round(time.monotonic() - started, 1)
                log(f"{side}: cleaned up in {result['cleanup']['seconds']:.0f} s "
                    f"(exit codes {result['cleanup']})")
    return result


def show(side: str, row: dict) -> None:
    if "stage_seconds" not in row:
        log(f"{side}: {row['run']}: {row['wall_s']:.1f} s wall, exit {row['exit']}: "
            f"{row['error']}")
        return
    log(f"{side}: {row['run']}: {row['wall_s']:.1f} s wall ({row['run_s']:.1f} s inside the run)"
        f", exit {row['exit']}, failed: {', '.join(row['failed']) or 'none'}, changed nothing: "
        f"{row['changed_nothing']}")
    for stage, fig in row["stage_seconds"].items():
        print(f"    {stage:<18} {fig['count']:>2} x {fig['seconds']:>8.1f} s summed")


# ------------------------------------------------------------------ side by side


def ratio(ours: float | None, base: float | None) -> float | None:
    """openstack/sandbox; none for a stage under 0.05 s on the sandbox (noise)."""
    return round(ours / base, 2) if ours is not None and base and base >= 0.05 else None


def compare(sandbox: dict, openstack: dict) -> dict:
    """Per stage (summed over systems, a wave's stack operation once) and per system and
    stage: sandbox seconds, OpenStack seconds, the ratio; and the whole run."""
    stages: dict[str, dict] = {}
    for side, row in (("sandbox", sandbox), ("openstack", openstack)):
        for stage, fig in (row.get("stage_seconds") or {}).items():
            entry = stages.setdefault(stage, {"sandbox_s": None, "openstack_s": None})
            entry[f"{side}_s"] = fig["seconds"]
            entry[f"{side}_count"] = fig["count"]
    for entry in stages.values():
        entry["ratio"] = ratio(entry["openstack_s"], entry["sandbox_s"])
    systems: dict[str, dict] = {}
    for side, row in (("sandbox", sandbox), ("openstack", openstack)):
        for sid, system in (row.get("systems") or {}).items():
            for record in system["stages"]:
                entry = systems.setdefault(sid, {}).setdefault(
                    record["stage"], {"sandbox_s": None, "openstack_s": None})
                entry[f"{side}_s"] = record["seconds"]
                entry[f"{side}_result"] = record["result"]
    for per_stage in systems.values():
        for entry in per_stage.values():
            entry["ratio"] = ratio(entry["openstack_s"], entry["sandbox_s"])
    whole = {key: {"sandbox_s": sandbox.get(key), "openstack_s": openstack.get(key),
                   "ratio": ratio(openstack.get(key), sandbox.get(key))}
             for key in ("run_s", "wall_s")}
    return {"run": sandbox["run"], "whole": whole, "stages": stages, "systems": systems}


def table(compared: dict) -> str:
    def cell(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    def factor(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    lines = [f"\n{compared['run']}: seconds, sandbox | OpenStack | ratio openstack/sandbox",
             f"  {'stage (summed over systems)':<42} {'sandbox':>9} {'openstack':>10} "
             f"{'ratio':>7}"]
    for stage, entry in compared["stages"].items():
        counts = f"{entry.get('sandbox_count', 0)}/{entry.get('openstack_count', 0)}x"
        lines.append(f"  {stage + ' (' + counts + ')':<42} {cell(entry['sandbox_s']):>9} "
                     f"{cell(entry['openstack_s']):>10} {factor(entry['ratio']):>7}")
    for sid, per_stage in compared["systems"].items():
        for stage, entry in per_stage.items():
            results = f"{entry.get('sandbox_result', '-')}/{entry.get('openstack_result', '-')}"
            if results == "skipped/skipped":
                continue
            if stage in ("provision", "preview"):  # the wave's stack operation, not its own
                results += ", wave"
            lines.append(f"  {sid + ' ' + stage + ' (' + results + ')':<42} "
                         f"{cell(entry['sandbox_s']):>9} {cell(entry['openstack_s']):>10} "
                         f"{factor(entry['ratio']):>7}")
    for key, name in (("run_s", "whole run (inside migrate)"), ("wall_s", "whole run (wall)")):
        entry = compared["whole"][key]
        lines.append(f"  {name:<42} {cell(entry['sandbox_s']):>9} {cell(entry['openstack_s']):>10}"
                     f" {factor(entry['ratio']):>7}")
    return "\n".join(lines)


def preflight(clouds_yaml: Path) -> None:
    from migrate.adapters.engine import find_engine

    if os.geteuid() != 0:
        raise SystemExit("needs root, like the sandbox and the test cloud's routes")
    if find_engine() is None:
        raise SystemExit("the Pulumi engine is not built: run 'make engine'")
    if not clouds_yaml.exists():
        raise SystemExit(f"no {clouds_yaml}: the test cloud is not up "
                         "(python -m migrate.rehearsal.testcloud status)")
    try:
        cloud_session(clouds_yaml)
    except Exception as error:
        raise SystemExit(f"the test cloud does not answer ({error}): see "
                         "'python -m migrate.rehearsal.testcloud status'") from error


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--clouds-yaml", type=Path, default=CLOUDS_YAML)
    parser.add_argument("--keep", action="store_true",
                        help="leave machines, stacks and copies up (nothing destroyed)")
    parser.add_argument("--wait-minutes", type=float, default=120,
                        help="how long to wait for another estate's sandbox to go down")
    args = parser.parse_args()

    preflight(args.clouds_yaml)
    folder = Path(tempfile.mkdtemp(prefix="bench-targets-"))
    copies = {side: prepared(side, folder, args.clouds_yaml) for side in SIDES}
    sides: dict[str, dict] = {}
    deadline = time.monotonic() + args.wait_minutes * 60
    while True:
        busy = bridges_in_use([estate for estate, _ in copies.values()])
        if busy and time.monotonic() < deadline:  # no lock held while another sandbox is up
            log(f"another estate's sandbox is up ({', '.join(busy)}): checking again in 60 s")
            time.sleep(60)
            continue
        with ExitStack() as locks:
            for lock in LOCKS:
                locks.enter_context(held(lock))
            busy = bridges_in_use([estate for estate, _ in copies.values()])
            if not busy:
                preflight(args.clouds_yaml)  # still up after the wait?
                started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                load = os.getloadavg()
                for side in SIDES:
                    estate, env = copies[side]
                    try:
                        sides[side] = one_side(side, estate, env, args.clouds_yaml, args.keep)
                    except SystemExit as stop:
                        sides[side] = {"side": side, "runs": [], "error": str(stop)}
                        log(f"{side}: {stop}")
                break
        if time.monotonic() > deadline:
            shutil.rmtree(folder, ignore_errors=True)
            raise SystemExit(f"another estate's sandbox still holds {', '.join(busy)} after "
                             f"{args.wait_minutes} minutes: nothing was run")
        log(f"another estate's sandbox is up ({', '.join(busy)}): locks released, "
            "checking again in 60 s")
        time.sleep(60)
    document: dict[str, Any] = {
        "estate": str(ESTATE.relative_to(ROOT)), "started": started, "cpus": os.cpu_count(),
        "load_before": [round(x, 2) for x in load], "sides": sides, "comparison": []}
    for index in range(2):
        rows = [sides[s]["runs"][index] if len(sides[s]["runs"]) > index else None
                for s in SIDES]
        if all(rows):
            document["comparison"].append(compare(*rows))
            print(table(document["comparison"][-1]))
    failed = [f"{s}: {r['run']}" for s in SIDES for r in sides[s]["runs"] if not r["ok"]] + \
        [f"{s}: {r['run']} changed something" for s in SIDES for r in sides[s]["runs"][1:]
         if r["ok"] and not r["changed_nothing"]] + \
        [f"{s}: {sides[s]['error']}" for s in SIDES if sides[s].get("error")] + \
        [f"{s}: cleanup {c}" for s in SIDES for c, code in sides[s].get("cleanup", {}).items()
         if c != "seconds" and code != 0]
    document["failures"] = failed
    if args.json:
        args.json.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    if failed or args.keep:
        print(f"\nkept {folder} (copies, logs, .migrate/runs); failures: {failed or 'none'}")
        raise SystemExit(1 if failed else 0)
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
