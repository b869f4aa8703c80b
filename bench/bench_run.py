"""Benchmark: `migrate run` on the sandbox, from a clean copy of the example estate: the
whole run (or one wave / some systems) with its time per stage, then a second run that
must change nothing, and the orchestration overhead (run time not spent inside a stage).

Each run is a subprocess, as a user types it; the per-stage figures come from the run's
own summary (`--output json`). Everything it made is destroyed afterwards (not timed).
Needs root, the sandbox images and the built engine.

    .venv/bin/python bench/bench_run.py [--wave N] [--system ID ...] [--workers N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MIGRATE = str(Path(sys.executable).parent / "migrate")


def migrate(*args: str, check: bool = True) -> tuple[float, dict | None, str]:
    started = time.monotonic()
    done = subprocess.run([MIGRATE, *args], capture_output=True, text=True)
    seconds = time.monotonic() - started
    if check and done.returncode != 0:
        raise SystemExit(f"migrate {' '.join(args)} exited {done.returncode}:\n"
                         f"{done.stderr[-4000:]}")
    try:
        document = json.loads(done.stdout) if done.stdout.strip() else None
    except json.JSONDecodeError:
        document = None
    return seconds, document, done.stderr


def describe(label: str, wall: float, summary: dict) -> dict:
    waves = sum(w["seconds"] for w in summary["waves"])
    run_wide = sum(s["seconds"] for s in summary["stages"]  # a wave's stack operation
                   if s["stage"] not in ("provision", "preview"))  # is inside the wave
    row = {"run": label, "wall_s": round(wall, 1), "run_s": round(summary["seconds"], 1),
           "waves_s": round(waves, 1), "run_wide_stages_s": round(run_wide, 1),
           "overhead_s": round(wall - waves - run_wide, 1),
           "changed_nothing": summary["changed_nothing"], "failed": summary["failed"],
           "stage_seconds": summary["stage_seconds"],
           "waves": [{"number": w["number"], "systems": len(w["systems"]),
                      "workers": w["workers"], "seconds": w["seconds"]}
                     for w in summary["waves"]]}
    print(f"\n{label}: {wall:.1f} s wall ({summary['seconds']:.1f} s inside the run), "
          f"failed: {', '.join(summary['failed']) or 'none'}, "
          f"changed nothing: {summary['changed_nothing']}")
    for wave in row["waves"]:
        print(f"  wave {wave['number']}: {wave['systems']} systems, {wave['workers']} at once, "
              f"{wave['seconds']:.1f} s")
    for stage, figures in summary["stage_seconds"].items():
        print(f"  {stage:<12} {figures['count']:>3} x  {figures['seconds']:>7.1f} s summed")
    print(f"  outside any stage (start-up, planning between stages, process): "
          f"{row['overhead_s']:.1f} s")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wave", type=int)
    parser.add_argument("--system", action="append", default=[])
    parser.add_argument("--workers", type=int)
    parser.add_argument("--keep", action="store_true", help="leave machines and stacks up")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="bench-run-"))
    estate = folder / "estate"
    shutil.copytree(ROOT / "examples" / "estate", estate,
                    ignore=shutil.ignore_patterns(".migrate", "secrets", "certs"))
    os.environ.setdefault("MIGRATE_SANDBOX_ROOT", str(folder / "sandbox-root"))
    scope = [*(["--wave", str(args.wave)] if args.wave else []),
             *(a for s in args.system for a in ("--system", s)),
             *(["--workers", str(args.workers)] if args.workers else [])]
    rows = []
    try:
        wall, first, _ = migrate("run", str(estate), *scope, "--yes", "--output", "json",
                                 check=False)
        if first is None:
            raise SystemExit("the first run gave no summary")
        rows.append(describe("first run (clean copy)", wall, first))
        wall, second, _ = migrate("run", str(estate), *scope, "--yes", "--output", "json",
                                  check=False)
        rows.append(describe("second run (nothing to do)", wall, second))
        wall, status, _ = migrate("status", str(estate), "--output", "json")
        print(f"\nmigrate status: {wall:.2f} s; {status['counts']}")
    finally:
        if not args.keep:
            started = time.monotonic()
            migrate("destroy", str(estate), "--yes", "--leave-source-traces", check=False)
            migrate("sandbox", "down", str(estate), check=False)
            print(f"\ncleaned up in {time.monotonic() - started:.1f} s")
            shutil.rmtree(folder, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
