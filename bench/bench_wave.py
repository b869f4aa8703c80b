"""Benchmark: wave parallelism of `migrate run` on the sandbox. Eight systems of one wave
moved together against one such system moved alone (target: at most 2x its time).

The estate is generated: nine clones of the example's wjw-fybj (a web host and a database
host each, on their own legacy /24), all in wave 1. The baseline runs one clone alone
(`--system bw-0`); then the other eight run together (`--system bw-1 ... bw-8`), the run
choosing how many at once unless `--workers` says. Both figures are the wave's own time
from the run's summary (its stacks, transfer, registration, cutover with verification);
the sandbox comes up in the first run, outside the wave. Everything is destroyed
afterwards (not timed). Needs root, the sandbox images and the built engine.

    .venv/bin/python bench/bench_wave.py [--systems 8] [--workers N] [--json FILE]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "estate"
MIGRATE = str(Path(sys.executable).parent / "migrate")
TEMPLATE = "wjw-fybj"
FIRST_SUBNET = 100  # legacy rooms 192.168.100.0/24 and up: no other estate here uses them


def clone(manifest: dict, number: int) -> dict:
    system = copy.deepcopy(manifest)
    sid = f"bw-{number}"
    system["id"] = sid
    system["name"] = f"{manifest['name']}（克隆 {number}）"
    for host in system["source"]["hosts"]:
        last = host["address"].rsplit(".", 1)[1]
        host["address"] = f"192.168.{FIRST_SUBNET + number}.{last}"
    system["exchange"]["app_key"] = sid
    system["exchange"]["app_secret"] = f"secret://exchange-{sid}"
    for index, resource in enumerate(system["exchange"]["resources"]):
        resource["code"] = f"3/140/{100 + number:03d}/{index + 1:04d}"
    return system


def make_estate(folder: Path, count: int) -> Path:
    estate = folder / "estate"
    (estate / "systems").mkdir(parents=True)
    shutil.copy(EXAMPLE / "migrate.yaml", estate / "migrate.yaml")
    manifest = yaml.safe_load((EXAMPLE / "systems" / f"{TEMPLATE}.yaml").read_text())
    for number in range(count + 1):
        text = yaml.safe_dump(clone(manifest, number), allow_unicode=True, sort_keys=False)
        (estate / "systems" / f"bw-{number}.yaml").write_text(text, encoding="utf-8")
    return estate


def migrate(*args: str) -> tuple[float, dict | None, int, str]:
    started = time.monotonic()
    done = subprocess.run([MIGRATE, *args], capture_output=True, text=True)
    seconds = time.monotonic() - started
    try:
        document = json.loads(done.stdout) if done.stdout.strip() else None
    except json.JSONDecodeError:
        document = None
    return seconds, document, done.returncode, done.stderr


def run(estate: Path, systems: list[str], workers: int | None) -> dict:
    scope = [a for s in systems for a in ("--system", s)]
    extra = ["--workers", str(workers)] if workers else []
    wall, summary, code, stderr = migrate("run", str(estate), *scope, *extra, "--yes",
                                          "--output", "json")
    if summary is None or code != 0:
        raise SystemExit(f"migrate run {' '.join(scope)} exited {code}:\n{stderr[-4000:]}")
    (wave,) = summary["waves"]
    row = {"systems": len(systems), "workers": wave["workers"], "wall_s": round(wall, 1),
           "wave_s": wave["seconds"], "stage_seconds": summary["stage_seconds"],
           "per_system_s": {s["system"]: round(sum(r["seconds"] for r in s["stages"]), 1)
                            for s in summary["systems"]}}
    print(f"{len(systems)} system(s), {wave['workers']} at once: wave {wave['seconds']:.1f} s "
          f"(run {wall:.1f} s wall)", flush=True)
    for stage, figures in summary["stage_seconds"].items():
        print(f"  {stage:<10} {figures['count']:>3} x {figures['seconds']:>7.1f} s summed")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", type=int, default=8)
    parser.add_argument("--workers", type=int, help="systems at once (default: the run's)")
    parser.add_argument("--keep", action="store_true", help="leave machines and stacks up")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="bench-wave-"))
    estate = make_estate(folder, args.systems)
    os.environ.setdefault("MIGRATE_SANDBOX_ROOT", str(folder / "sandbox-root"))
    try:
        alone = run(estate, ["bw-0"], None)
        together = run(estate, [f"bw-{n}" for n in range(1, args.systems + 1)],
                       args.workers)
    finally:
        if not args.keep:
            started = time.monotonic()
            migrate("destroy", str(estate), "--yes", "--leave-source-traces")
            migrate("sandbox", "down", str(estate))
            print(f"cleaned up in {time.monotonic() - started:.1f} s")
            shutil.rmtree(folder, ignore_errors=True)
    ratio = together["wave_s"] / alone["wave_s"]
    print(f"\n{args.systems} systems of one wave: {together['wave_s']:.1f} s; one alone: "
          f"{alone['wave_s']:.1f} s; ratio {ratio:.2f} (target <= 2)")
    if args.json:
        args.json.write_text(json.dumps({"alone": alone, "together": together,
                                         "ratio": round(ratio, 3)}, indent=2) + "\n")


if __name__ == "__main__":
    main()
