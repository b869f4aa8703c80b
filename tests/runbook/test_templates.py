"""Templates: StrictUndefined makes a missing value fail at render time."""

from __future__ import annotations

import shutil

import pytest

from migrate.adapters.render import TEMPLATES_DIR, RenderError, render
from migrate.stages.runbook import STAGE_TITLES, STAGES, plan_system_context


def test_a_missing_value_fails_at_render_time(example):
    estate, plan = example
    context = plan_system_context(estate, plan, plan["systems"][0], "examples/estate")
    del context["timing"]
    for fmt in ("md", "html"):
        with pytest.raises(RenderError, match="timing"):
            render("plan_system.j2", fmt, context)


def test_a_template_that_references_an_unknown_value_fails(tmp_path, example):
    estate, plan = example
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES_DIR, templates)
    path = templates / "plan_system.j2"
    path.write_text(path.read_text(encoding="utf-8") + "{{ system.no_such_field }}\n",
                    encoding="utf-8")
    context = plan_system_context(estate, plan, plan["systems"][0], "examples/estate")
    with pytest.raises(RenderError, match="no_such_field"):
        render("plan_system.j2", "md", context, templates)
    # the untouched templates render the same context
    assert render("plan_system.j2", "md", context).startswith("# ")


def test_plan_runbook_sections_are_the_stage_titles_without_codes(example):
    estate, plan = example
    context = plan_system_context(estate, plan, plan["systems"][0], "examples/estate")
    markdown = render("plan_system.j2", "md", context)
    html = render("plan_system.j2", "html", context)
    headings = [line[3:] for line in markdown.splitlines() if line.startswith("## ")]
    titles = [STAGE_TITLES[s] for s in STAGES]
    assert [h for h in headings if h in titles] == titles
    assert not any(stage in heading for heading in headings for stage in STAGES)
    for stage in STAGES:
        assert f'<h2 id="{stage}">' in html


def test_markdown_table_cells_are_escaped(example):
    estate, plan = example
    context = plan_system_context(estate, plan, plan["systems"][0], "examples/estate")
    context["function"] = "a | b\nc"
    markdown = render("plan_system.j2", "md", context)
    assert "| a \\| b c |" in markdown


def test_html_escapes_values(example):
    estate, plan = example
    context = plan_system_context(estate, plan, plan["systems"][0], "examples/estate")
    context["function"] = "<script>alert(1)</script>"
    html = render("plan_system.j2", "html", context)
    assert "<script>" not in html and "&lt;script&gt;" in html
