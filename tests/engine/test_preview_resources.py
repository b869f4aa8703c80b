"""With the built engine: what a preview would change, resource by resource, as preview
--diff and provision's question show it (migrate.stages.provision.EventTracker)."""

from __future__ import annotations

import pytest
from pulumi import automation as auto

from migrate.stages.provision import EventTracker
from tests.engine.test_engine_selftest import TEXT, stack  # noqa: F401 (the fixture)

PROBE = "pulumi-python:dynamic:Resource"


@pytest.mark.slow
def test_a_preview_names_the_resources_it_would_create_and_replace(stack: auto.Stack  # noqa: F811
                                                                   ) -> None:
    created = EventTracker("dev", lambda _line: None)
    stack.preview(on_event=created, diff=False)
    assert created.resources == [{"op": "create", "type": PROBE, "name": "probe",
                                  "properties": []}]  # not the stack or its provider
    stack.up()
    stack.set_config("text", auto.ConfigValue(TEXT + " v2"))
    replaced = EventTracker("dev", lambda _line: None)
    preview = stack.preview(on_event=replaced, diff=False)
    assert preview.change_summary == {"replace": 1, "same": 1}
    assert replaced.resources == [{"op": "replace", "type": PROBE, "name": "probe",
                                   "properties": ["text"]}]  # three steps, one resource
