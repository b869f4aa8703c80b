"""The committed examples (``runbooks/examples/``): the example estate planned in-process,
its plan runbooks and its report with no journal yet, and on request screenshots of the
pages. ``python -m migrate.orchestrate.examples`` regenerates them."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from migrate.core.loader import Estate
from migrate.core.plan import build_plan
from migrate.orchestrate import pipeline
from migrate.stages.report import build_report, write_report
from migrate.stages.runbook import write_plan_runbooks


def build_example(estate_dir: Path) -> tuple[Estate, dict]:
    """The example estate and its plan, built in-process (no state written)."""
    context = pipeline.open_context(estate_dir)
    return context.estate, build_plan(context.estate, pipeline.run_census(context))


def write_examples(estate_dir: Path, out_dir: Path, *, estate_arg: str = "examples/estate",
                   screenshots: bool = False) -> list[Path]:
    """The committed example: plan runbooks and the report (no journal yet, as of the plan's
    date) of ``estate_dir`` into ``out_dir``; on request, screenshots of the HTML pages and
    of their printed A4 pages (refused when anything overflows its printed page)."""
    estate, plan = build_example(estate_dir)
    written = write_plan_runbooks(estate, plan, out_dir, estate_arg=estate_arg)
    report = build_report(estate, plan, [], date.fromisoformat(plan["as_of"]))
    written += write_report(report, out_dir / "report")
    if screenshots:
        first = plan["systems"][0]["id"]
        pages = {"report": out_dir / "report" / "report.html",
                 f"plan-{first}": out_dir / "plan" / f"{first}.html",
                 "plan-wave-1": out_dir / "plan" / "wave-1.html"}
        written += example_screenshots(pages, out_dir / "screenshots")
    return written


def example_screenshots(pages: dict[str, Path], folder: Path) -> list[Path]:
    """A screen shot of each page, and its printed A4 pages as PNG (pdftoppm)."""
    import shutil
    import subprocess
    import tempfile

    from migrate.adapters.render import check_in_browser, print_overflow, print_to_pdf

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, page in pages.items():
        check = check_in_browser(page, folder / f"{name}.png")
        overflow = print_overflow(page)
        if check.problems or overflow:
            raise RuntimeError(f"{page}: {check.problems + overflow}")
        written.append(check.screenshot)
        if shutil.which("pdftoppm") is None:
            continue
        with tempfile.TemporaryDirectory() as scratch:
            pdf = print_to_pdf(page, Path(scratch) / f"{name}.pdf")
            subprocess.run(["pdftoppm", "-r", "60", "-png", str(pdf),
                            str(folder / f"print-{name}")], check=True)
        written += sorted(folder.glob(f"print-{name}-*.png"))
    return written


if __name__ == "__main__":  # python -m migrate.orchestrate.examples: regenerate them
    import sys

    root = Path(__file__).resolve().parents[2]
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else root / "runbooks" / "examples"
    for path in write_examples(root / "examples" / "estate", target, screenshots=True):
        print(path)
