"""Benchmark: validate + census + plan of a generated 1,000-system estate.

Baseline, in the same process and on the same files: reading and parsing every YAML file
with PyYAML's C loader (CSafeLoader). Target: ratio <= 3 and under 5 s.

    .venv/bin/python bench/bench_estate.py [--systems 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from migrate.core.plan import build_plan, render_plan  # noqa: E402
from migrate.orchestrate import pipeline  # noqa: E402

EXAMPLE = ROOT / "examples" / "estate"


def generate_estate(folder: Path, count: int) -> None:
    """Systems modelled on the example rsj-sbcx, in 100 departments, with dependency chains,
    zombies and shadow pairs sprinkled in so every census and plan path runs."""
    settings = yaml.safe_load((EXAMPLE / "migrate.yaml").read_text(encoding="utf-8"))
    (folder / "systems").mkdir(parents=True)
    (folder / "migrate.yaml").write_text(yaml.safe_dump(settings, allow_unicode=True),
                                         encoding="utf-8")
    template = yaml.safe_load((EXAMPLE / "systems/rsj-sbcx.yaml").read_text(encoding="utf-8"))
    for index in range(count):
        department = f"d{index % 100:03d}"
        sid = f"{department}-s{index:04d}"
        doc = copy.deepcopy(template)
        doc["id"] = sid
        doc["department"] = {"code": department, "name": f"第{index % 100}局"}
        doc["source"]["hosts"][0]["address"] = f"172.{16 + index // 250}.{index % 250}.11"
        doc["source"]["hosts"][1]["address"] = f"172.{16 + index // 250}.{index % 250}.12"
        doc["depends_on"] = [f"{department}-s{index - 100:04d}"] if index >= 100 else []
        doc["exchange"]["app_key"] = sid
        doc["exchange"]["app_secret"] = f"secret://exchange-{sid}"
        doc["exchange"]["resources"][0]["code"] = f"3/{index // 1000 + 100}/{index % 1000:03d}/1"
        doc["census"]["usage_frequency"]["monthly_active_users"] = 50 + index * 7 % 5000
        if index % 97 == 5:
            doc["census"]["usage_frequency"]["last_used"] = "2024-01-01"
        if index % 89 == 3 and index + 1 < count:
            doc["census"]["duplicates"] = [f"d{(index + 1) % 100:03d}-s{index + 1:04d}"]
        (folder / "systems" / f"{sid}.yaml").write_text(
            yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")


def parse_only(folder: Path) -> int:
    count = 0
    for path in sorted((folder / "systems").rglob("*.yaml")):
        yaml.load(path.read_bytes().decode("utf-8"), Loader=yaml.CSafeLoader)
        count += 1
    yaml.load((folder / "migrate.yaml").read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
    return count


def validate_census_plan(folder: Path) -> dict:
    estate = pipeline.open_estate(folder)
    census = pipeline.run_census(pipeline.context_of(estate))
    plan = build_plan(estate, census)
    render_plan(plan)
    return plan


def timed(function, *args) -> tuple[float, object]:
    start = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - start, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--systems", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "estate"
        generate_estate(folder, args.systems)
        parse_times, ours_times = [], []
        for _ in range(args.repeat):  # interleaved, so machine noise hits both alike
            seconds, _ = timed(parse_only, folder)
            parse_times.append(seconds)
            seconds, plan = timed(validate_census_plan, folder)
            ours_times.append(seconds)
        baseline, ours = statistics.median(parse_times), statistics.median(ours_times)
        result = {
            "systems": args.systems,
            "planned": len(plan["systems"]),
            "waves": len(plan["waves"]),
            "parse_csafeloader_s": round(baseline, 3),
            "validate_census_plan_s": round(ours, 3),
            "ratio": round(ours / baseline, 2),
            "target": "ratio <= 3 and < 5 s",
        }
    print(json.dumps(result, indent=2))
    return 0 if result["ratio"] <= 3 and ours < 5 else 1


if __name__ == "__main__":
    sys.exit(main())
