"""Shared rendering for runbooks and reports: Jinja2 (StrictUndefined) and inline SVG charts.

One content template per document renders both formats: it imports the macros of
``_md.j2`` or ``_html.j2`` (headings, tables, lists, code) by the ``fmt`` variable, and HTML
bodies are wrapped in ``_page.html.j2`` (inline CSS, no external assets). A template that
uses a value the caller did not pass fails at render time (``RenderError``).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import jinja2
from markupsafe import Markup

from migrate.errors import MigrateError

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
FORMATS = ("md", "html")


class RenderError(MigrateError):
    """A template could not be rendered: it references a value that was not given, or is
    malformed. Raised at render time so nothing incomplete is written."""

    exit_code = 1


def md_cell(value: object) -> str:
    """A value safe inside a Markdown table cell."""
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def md_text(value: object) -> str:
    return str(value).replace("\n", " ")


@cache
def environment(fmt: str, templates_dir: Path = TEMPLATES_DIR) -> jinja2.Environment:
    if fmt not in FORMATS:
        raise ValueError(fmt)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir)),
        undefined=jinja2.StrictUndefined,
        autoescape=fmt == "html",
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["md_cell"] = md_cell
    env.filters["md_text"] = md_text
    return env


def render(template: str, fmt: str, context: dict, templates_dir: Path = TEMPLATES_DIR) -> str:
    """Render ``template`` in ``fmt`` (md or html); HTML comes as one self-contained page."""
    env = environment(fmt, templates_dir)
    try:
        body = env.get_template(template).render(fmt=fmt, **context)
        if fmt == "html":
            body = env.get_template("_page.html.j2").render(
                fmt=fmt, title=context["title"], body=Markup(body))
    except jinja2.UndefinedError as error:
        raise RenderError(f"template {template} ({fmt}) references a missing value: {error}",
                          "pass the value to the template, or fix the template") from None
    except jinja2.TemplateError as error:
        raise RenderError(f"template {template} ({fmt}) failed: {error}",
                          f"fix the template in {templates_dir}") from None
    return _tidy(body)


def _tidy(text: str) -> str:
    """Collapse runs of blank lines and end with exactly one newline (stable bytes)."""
    lines = [line.rstrip() for line in text.splitlines()]
    tidy: list[str] = []
    for line in lines:
        if line == "" and tidy and tidy[-1] == "":
            continue
        tidy.append(line)
    while tidy and tidy[0] == "":
        tidy.pop(0)
    while tidy and tidy[-1] == "":
        tidy.pop()
    return "\n".join(tidy) + "\n"


def write_text(path: Path, text: str) -> Path:
    """Write only when the bytes differ, so regenerating leaves unchanged files untouched."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode("utf-8")
    if not path.is_file() or path.read_bytes() != data:
        path.write_bytes(data)
    return path


# ---------------------------------------------------------------- inline SVG charts

PALETTE = ("#1f6feb", "#2da44e", "#bf8700", "#8250df", "#cf222e", "#57606a", "#0a7f86")


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def bar_chart(title: str, categories: Sequence[str], series: Sequence[tuple[str, Sequence[int]]],
              width: int = 1100) -> Markup:
    """Grouped horizontal bars: one group per category, one bar per series, with a legend."""
    bar_h, gap, label_w, top = 9, 12, 220, 46
    group_h = bar_h * len(series) + gap
    height = top + group_h * max(1, len(categories)) + 20
    peak = max([v for _, values in series for v in values] + [1])
    plot_w = width - label_w - 60
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}" aria-label="{_esc(title)}">',
             f'<title>{_esc(title)}</title>',
             f'<text x="0" y="16" class="chart-title">{_esc(title)}</text>']
    for index, (name, _) in enumerate(series):
        x = label_w + index * 145
        parts.append(f'<rect x="{x}" y="26" width="10" height="10" '
                     f'fill="{PALETTE[index % len(PALETTE)]}"/>'
                     f'<text x="{x + 14}" y="35" class="legend">{_esc(name)}</text>')
    for row, category in enumerate(categories):
        y0 = top + row * group_h
        if row % 2 == 0:
            parts.append(f'<rect x="0" y="{y0 - gap / 2}" width="{width}" height="{group_h}" '
                         f'fill="#f6f8fa"/>')
        parts.append(f'<text x="{label_w - 8}" y="{y0 + (group_h - gap) / 2 + 4}" '
                     f'text-anchor="end" class="label">{_esc(category)}</text>')
        for index, (name, values) in enumerate(series):
            value = values[row]
            y = y0 + index * bar_h
            length = round(plot_w * value / peak, 1)
            parts.append(f'<rect x="{label_w}" y="{y}" width="{length}" height="{bar_h - 2}" '
                         f'fill="{PALETTE[index % len(PALETTE)]}"><title>{_esc(category)} '
                         f'{_esc(name)}: {value}</title></rect>')
            if value:
                parts.append(f'<text x="{label_w + length + 4}" y="{y + bar_h - 1}" '
                             f'class="value">{value}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def donut_chart(title: str, slices: Sequence[tuple[str, int]], size: int = 220,
                colours: Sequence[str] = PALETTE) -> Markup:
    """A donut of shares with a legend; empty slices are listed but not drawn."""
    total = sum(v for _, v in slices)
    radius, stroke = size / 2 - 20, 28
    centre = size / 2
    circumference = 2 * math.pi * radius
    height = max(size, 40 + 20 * len(slices))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{size + 260}" '
             f'height="{height}" viewBox="0 0 {size + 260} {height}" '
             f'aria-label="{_esc(title)}">', f'<title>{_esc(title)}</title>',
             f'<circle cx="{centre}" cy="{centre}" r="{radius}" fill="none" stroke="#eaeef2" '
             f'stroke-width="{stroke}"/>']
    offset = 0.0
    for index, (name, value) in enumerate(slices):
        colour = colours[index % len(colours)]
        if total and value:
            length = circumference * value / total
            parts.append(
                f'<circle cx="{centre}" cy="{centre}" r="{radius}" fill="none" '
                f'stroke="{colour}" stroke-width="{stroke}" '
                f'stroke-dasharray="{length:.2f} {circumference - length:.2f}" '
                f'stroke-dashoffset="{-offset:.2f}" '
                f'transform="rotate(-90 {centre} {centre})"><title>{_esc(name)}: {value}'
                f'</title></circle>')
            offset += length
        y = 30 + index * 20
        parts.append(f'<rect x="{size + 10}" y="{y - 10}" width="12" height="12" '
                     f'fill="{colour}"/><text x="{size + 28}" y="{y}" class="legend">'
                     f'{_esc(name)}: {value}</text>')
    parts.append(f'<text x="{centre}" y="{centre + 6}" text-anchor="middle" '
                 f'class="donut-total">{total}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


# ---------------------------------------------------------------- headless browser check

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def chromium_path() -> str | None:
    import shutil

    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass(frozen=True)
class BrowserCheck:
    dom: str
    screenshot: Path
    problems: list[str]


def check_in_browser(page: Path, screenshot: Path, *, width: int = 1280, height: int = 2000,
                     timeout: float = 90) -> BrowserCheck:
    """Load ``page`` from file:// in headless chromium: dump the rendered DOM, collect console
    messages and failed loads from its log, and take a screenshot. Needs no network: the
    background services that would call out are switched off."""
    import subprocess
    import tempfile

    binary = chromium_path()
    if binary is None:
        raise FileNotFoundError("chromium is not installed (apt-get install chromium)")
    url = page.resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="migrate-chromium-") as profile:
        base = [binary, "--headless", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--hide-scrollbars",
                f"--user-data-dir={profile}"]
        dumped = subprocess.run([*base, "--enable-logging=stderr", "--v=0", "--dump-dom", url],
                                capture_output=True, text=True, timeout=timeout, check=False)
        shot = subprocess.run([*base, f"--screenshot={screenshot}",
                               f"--window-size={width},{height}", url],
                              capture_output=True, text=True, timeout=timeout, check=False)
    problems = [line for line in dumped.stderr.splitlines()
                if "CONSOLE" in line or "net::ERR_" in line or "Uncaught" in line]
    if dumped.returncode != 0:
        problems.append(f"chromium --dump-dom exited {dumped.returncode}")
    if shot.returncode != 0 or not screenshot.is_file():
        problems.append(f"chromium --screenshot exited {shot.returncode}: {shot.stderr[-500:]}")
    return BrowserCheck(dumped.stdout, screenshot, problems)
