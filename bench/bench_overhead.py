"""Benchmark: orchestration overhead of `migrate run` for one system, against the time the
bare tools spend on the same work (target: at most 1.15).

On a clean copy of the example estate the sandbox is brought up first (not timed: the
bare tools have no sandbox to start), then `migrate run --system ID` is timed as a user
types it. The baseline is the same run's own tool time, read back from its journal:
each Pulumi operation (`pulumi stack select/init`, `config`, `up`, as the provisioner
timed them), each Ansible play (ansible-runner starting `ansible-playbook` until it
ends), and each verification's pytest process. What is left is migrate's own work:
planning, inventories, evidence, journal, registration on the platform, runbooks and
the report. Everything is destroyed afterwards (not timed).

    .venv/bin/python bench/bench_overhead.py [--system wjw-fybj] [--json FILE]
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


def migrate(*args: str) -> tuple[float, str]:
    started = time.monotonic()
    done = subprocess.run([MIGRATE, *args], capture_output=True, text=True)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"migrate {' '.join(args)} exited {done.returncode}:\n"
                         f"{done.stderr[-4000:]}")
    return seconds, done.stdout


def journal_since(estate: Path, start: int) -> list[dict]:
    lines = (estate / ".migrate" / "journal.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines[start:] if line.strip()]


def tool_seconds(entries: list[dict]) -> dict[str, float]:
    """What the engine, ansible-playbook and pytest spent, by tool."""
    tools = {"pulumi": 0.0, "ansible": 0.0, "pytest": 0.0}
    for entry in entries:
        outputs = entry.get("outputs") or {}
        if entry["stage"] in ("provision", "preview"):
            tools["pulumi"] += entry.get("duration_s") or 0.0
        for play in (outputs.get("plays") or {}).values():
            tools["ansible"] += play.get("duration_s") or 0.0
        if entry["stage"] == "verify":  # a cutover's verification is an entry of its own
            tools["pytest"] += outputs.get("pytest_s") or 0.0
    return {tool: round(seconds, 2) for tool, seconds in tools.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", default="wjw-fybj")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="bench-overhead-"))
    estate = folder / "estate"
    shutil.copytree(ROOT / "examples" / "estate", estate,
                    ignore=shutil.ignore_patterns(".migrate", "secrets", "certs"))
    os.environ.setdefault("MIGRATE_SANDBOX_ROOT", str(folder / "sandbox-root"))
    try:
        up_s, _ = migrate("sandbox", "up", str(estate))
        start = len((estate / ".migrate" / "journal.jsonl").read_text().splitlines())
        wall, out = migrate("run", str(estate), "--system", args.system, "--yes",
                            "--output", "json")
        summary = json.loads(out)
        sandbox_check = sum(s["seconds"] for s in summary["stages"] if s["stage"] == "sandbox")
        tools = tool_seconds(journal_since(estate, start))
    finally:
        started = time.monotonic()
        subprocess.run([MIGRATE, "destroy", str(estate), "--yes", "--leave-source-traces"],
                       capture_output=True)
        subprocess.run([MIGRATE, "sandbox", "down", str(estate)], capture_output=True)
        print(f"cleaned up in {time.monotonic() - started:.1f} s")
        shutil.rmtree(folder, ignore_errors=True)
    bare = sum(tools.values())
    ours = wall - sandbox_check
    ratio = ours / bare
    print(f"sandbox up beforehand: {up_s:.1f} s (not counted)")
    print(f"migrate run --system {args.system}: {wall:.1f} s wall, of which {sandbox_check:.1f} s "
          "checking the sandbox (not counted)")
    by_tool = ", ".join(f"{tool} {seconds:.1f} s" for tool, seconds in tools.items())
    print(f"bare tools inside it: {bare:.1f} s ({by_tool})")
    print(f"overhead: {ours - bare:.1f} s; ratio {ratio:.3f} (target <= 1.15)")
    if args.json:
        args.json.write_text(json.dumps({"wall_s": round(wall, 2), "sandbox_s": sandbox_check,
                                         "tools_s": tools, "ratio": round(ratio, 3)},
                                        indent=2) + "\n")


if __name__ == "__main__":
    main()
