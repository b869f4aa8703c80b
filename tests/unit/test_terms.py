"""Every code the runbooks show has its Chinese term (a code without one is shown raw)."""

from __future__ import annotations

import re

from migrate.core import plan_document, terms


def test_every_rule_origin_the_plan_names_has_a_term() -> None:
    described = plan_document.SecurityRule.model_fields["origin"].description or ""
    origins = set(re.findall(r"\b[a-z]+\b", described)) - {"or", "target", "flows"}
    assert {"management", "interconnection", "migration", "packages", "metadata"} <= origins
    assert {o for o in origins if terms.rule_origin(o) == o} == set()
    assert terms.rule_origin("target.flows[2]") == "业务访问 flows[2]"
