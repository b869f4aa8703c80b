"""Benchmark: `migrate provision` of one example system on the sandbox against a bare
`pulumi up` of the same program, stacks and configuration (target ratio <= 1.1).

Both sides create the department network stack and the system stack from scratch and are
destroyed after each round (not timed); rounds alternate so machine noise hits both alike.
Needs root, the sandbox images and the built engine.

    .venv/bin/python bench/bench_provision.py [--system wjw-fybj] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from migrate.adapters import engine  # noqa: E402
from migrate.core import stackplan  # noqa: E402
from migrate.orchestrate import pipeline  # noqa: E402
from migrate.stages import provision  # noqa: E402

MIGRATE = str(Path(sys.executable).parent / "migrate")


def timed(command: list[str], env: dict | None = None, cwd: Path | None = None) -> float:
    started = time.monotonic()
    subprocess.run(command, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)
    return time.monotonic() - started


def bare_up(estate: Path, system: str) -> tuple[float, callable]:
    """Run the same two stacks with the pulumi CLI alone, on a backend of its own."""
    context = pipeline.open_context(estate)
    settings = pipeline.provision_settings(context, context.plan_path.resolve())
    state = Path(tempfile.mkdtemp(prefix="bare-pulumi-"))
    engine.prepare_state_dir(state)
    env = engine.engine_env(state, settings.passphrase_file,
                            engine=engine.ensure_engine(build=False))
    # a workspace of its own whose Pulumi.yaml points at the program, as migrate does, so
    # Pulumi.<stack>.yaml files stay out of the source tree
    program = provision.workspace_dir(state, ROOT / "stacks" / "sandbox")
    plan = stackplan.read_plan(settings.plan_path)
    network = stackplan.select_system(plan, system)["network"]
    stacks = [(stackplan.network_stack_name(network), "migrate:network", network),
              (stackplan.system_stack_name(system), "migrate:system", system)]
    pulumi = str(engine.ensure_engine(build=False))
    started = time.monotonic()
    for name, key, value in stacks:
        base = [pulumi, "--non-interactive", "--cwd", str(program)]
        subprocess.run([*base, "stack", "init", name, "--secrets-provider", "passphrase"],
                       env=env, check=True, capture_output=True)
        config = {"migrate:plan": str(settings.plan_path), key: value, **settings.config}
        for config_key, config_value in config.items():
            subprocess.run([*base, "config", "set", "--stack", name, config_key, "--",
                            config_value], env=env, check=True, capture_output=True)
        subprocess.run([*base, "up", "--stack", name, "--yes", "--skip-preview"], env=env,
                       check=True, capture_output=True)
    seconds = time.monotonic() - started

    def destroy() -> None:
        for name, _key, _value in reversed(stacks):
            subprocess.run([pulumi, "--non-interactive", "--cwd", str(program), "destroy",
                            "--stack", name, "--yes", "--skip-preview"], env=env, check=True,
                           capture_output=True)
        shutil.rmtree(state, ignore_errors=True)

    return seconds, destroy


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--system", default="wjw-fybj")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-provision-"))
    estate = work / "estate"
    shutil.copytree(ROOT / "examples" / "estate", estate,
                    ignore=shutil.ignore_patterns(".migrate", "secrets", "certs"))
    os.environ["MIGRATE_SANDBOX_ROOT"] = str(work / "sandbox-root")
    subprocess.run([MIGRATE, "plan", str(estate)], check=True, stdout=subprocess.DEVNULL)
    ours, bare = [], []
    try:
        for _ in range(args.rounds):
            ours.append(timed([MIGRATE, "provision", str(estate), "--system", args.system,
                               "--yes", "--output", "json"]))
            subprocess.run([MIGRATE, "destroy", str(estate), "--system", args.system, "--yes"],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            seconds, destroy = bare_up(estate, args.system)
            bare.append(seconds)
            destroy()
    finally:
        subprocess.run([MIGRATE, "destroy", str(estate), "--system", args.system, "--yes"],
                       check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(work, ignore_errors=True)
    result = {"system": args.system, "rounds": args.rounds,
              "migrate_provision_s": round(statistics.median(ours), 2),
              "bare_pulumi_up_s": round(statistics.median(bare), 2),
              "ratio": round(statistics.median(ours) / statistics.median(bare), 3),
              "target": "ratio <= 1.1", "all_migrate_s": [round(x, 2) for x in ours],
              "all_bare_s": [round(x, 2) for x in bare]}
    print(json.dumps(result, indent=2))
    return 0 if result["ratio"] <= 1.1 else 1


if __name__ == "__main__":
    sys.exit(main())
