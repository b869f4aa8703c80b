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

from migrate.core import resources
from migrate.core.errors import MigrateError

TEMPLATES_DIR = resources.folder("templates")
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


def text_width(text: str, size: float = 12) -> float:
    """About how wide ``text`` is drawn at ``size`` px: CJK glyphs are square, Latin ones
    about 0.6 of the size (the SVG has no font metrics to ask)."""
    return sum(size if ord(ch) > 0x2E80 else size * 0.6 for ch in text)


def _legend(names: Sequence[str], width: float, top: float,
            colours: Sequence[str] = PALETTE) -> tuple[list[str], float]:
    """Legend items flowed left to right, wrapping within ``width``; its parts and height."""
    parts, x, y = [], 0.0, top
    for index, name in enumerate(names):
        item = 14 + text_width(name) + 18
        if x and x + item > width:
            x, y = 0.0, y + 18
        colour = colours[index % len(colours)]
        parts.append(f'<rect x="{x:.0f}" y="{y:.0f}" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{x + 14:.0f}" y="{y + 9:.0f}" class="legend">{_esc(name)}</text>')
        x += item
    return parts, y + 18 - top


def stacked_bar_chart(title: str, categories: Sequence[str],
                      series: Sequence[tuple[str, Sequence[int]]], width: int = 720,
                      colours: Sequence[str] = PALETTE) -> Markup:
    """One bar per category split into its series (states that exclude each other), with
    the count in each segment and a legend that wraps; scales to the page by its viewBox."""
    bar_h, gap = 16, 8
    label_w = min(width * 0.4, max([text_width(c) for c in categories] + [60]) + 12)
    names = [name for name, _ in series]
    legend, legend_h = _legend(names, width, 26, colours)
    top = 26 + legend_h + 8
    height = top + (bar_h + gap) * max(1, len(categories)) + 4
    peak = max([sum(values[row] for _, values in series) for row in range(len(categories))]
               + [1])
    plot_w = width - label_w - 10
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="chart" '
             f'viewBox="0 0 {width} {height:.0f}" aria-label="{_esc(title)}">',
             f'<title>{_esc(title)}</title>',
             f'<text x="0" y="16" class="chart-title">{_esc(title)}</text>', *legend]
    for row, category in enumerate(categories):
        y = top + row * (bar_h + gap)
        parts.append(f'<text x="{label_w - 8:.0f}" y="{y + bar_h - 4}" text-anchor="end" '
                     f'class="label">{_esc(category)}</text>')
        x = label_w
        for index, (name, values) in enumerate(series):
            value = values[row]
            if not value:
                continue
            length = plot_w * value / peak
            parts.append(f'<rect x="{x:.1f}" y="{y}" width="{length:.1f}" height="{bar_h}" '
                         f'fill="{colours[index % len(colours)]}"><title>{_esc(category)} '
                         f'{_esc(name)}: {value}</title></rect>')
            if length >= 14:
                parts.append(f'<text x="{x + length / 2:.1f}" y="{y + bar_h - 4}" '
                             f'text-anchor="middle" class="segment">{value}</text>')
            x += length
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
    legend_w = max([text_width(f"{name}: {value}") for name, value in slices] + [80]) + 40
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="chart donut" '
             f'viewBox="0 0 {size + legend_w:.0f} {height}" '
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


# ---------------------------------------------------------------- printed pages (A4)

MM = 96 / 25.4  # CSS px per millimetre
A4_PORTRAIT_PX = round((210 - 24) * MM)  # the @page margins of _page.html.j2
A4_LANDSCAPE_PX = round((297 - 20) * MM)

# Applies the page's print rules on screen at the printable width of A4 portrait, then
# reports what is wider than its page: what a .wide-page section holds prints landscape.
_PRINT_PROBE = """<script>
(() => {
  for (const sheet of document.styleSheets) {
    for (const rule of [...sheet.cssRules]) {
      if (rule.media && rule.media.mediaText === "print") {
        for (const inner of [...rule.cssRules]) {
          sheet.insertRule(inner.cssText, sheet.cssRules.length);
        }
      }
    }
  }
  const portrait = %d, landscape = %d, found = [];
  document.body.style.width = portrait + "px";
  document.body.style.margin = "0";
  for (const el of document.body.querySelectorAll("table, svg, pre, h1, h2, h3, p, ul, figure")) {
    const wide = el.closest(".wide-page");
    const limit = wide ? landscape : portrait;
    const width = Math.max(el.scrollWidth || 0, el.getBoundingClientRect().width);
    if (width > limit + 1) found.push(el.tagName.toLowerCase() + (wide ? ".wide" : "") + " " +
      Math.round(width) + "px > " + limit + "px: " + (el.textContent || "").trim().slice(0, 60));
  }
  const pre = document.createElement("pre");
  pre.id = "print-probe";
  pre.textContent = JSON.stringify(found);
  document.body.appendChild(pre);
})();
</script>"""


def print_overflow(page: Path, timeout: float = 90) -> list[str]:
    """What would not fit on its A4 page when ``page`` is printed (empty: everything fits)."""
    import json
    import re
    import subprocess
    import tempfile

    binary = chromium_path()
    if binary is None:
        raise FileNotFoundError("chromium is not installed (apt-get install chromium)")
    probe = _PRINT_PROBE % (A4_PORTRAIT_PX, A4_LANDSCAPE_PX)
    probed = page.read_text(encoding="utf-8").replace("</body>", probe + "</body>")
    with tempfile.TemporaryDirectory(prefix="migrate-print-") as scratch:
        copy = Path(scratch) / page.name
        copy.write_text(probed, encoding="utf-8")
        dumped = subprocess.run([binary, *_headless(scratch), "--dump-dom",
                                 f"--window-size={A4_PORTRAIT_PX},1200", copy.as_uri()],
                                capture_output=True, text=True, timeout=timeout, check=False)
    found = re.search(r'<pre id="print-probe">(.*?)</pre>', dumped.stdout, re.S)
    if found is None:
        return [f"the print probe did not run (chromium exited {dumped.returncode})"]
    return json.loads(html.unescape(found.group(1)))


def print_to_pdf(page: Path, pdf: Path, timeout: float = 120) -> Path:
    """``page`` printed by headless Chromium (its @page rules: A4) to ``pdf``."""
    import subprocess
    import tempfile

    binary = chromium_path()
    if binary is None:
        raise FileNotFoundError("chromium is not installed (apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="migrate-pdf-") as scratch:
        done = subprocess.run([binary, *_headless(scratch), "--no-pdf-header-footer",
                               f"--print-to-pdf={pdf}", page.resolve().as_uri()],
                              capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0 or not pdf.is_file():
        raise RuntimeError(f"chromium --print-to-pdf exited {done.returncode}: "
                           f"{done.stderr[-500:]}")
    return pdf


def _headless(profile: str) -> list[str]:
    return ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run",
            "--hide-scrollbars", f"--user-data-dir={profile}"]
