"""JUnit XML (pytest ``--junitxml``, family xunit1 so that test properties are kept) to
per-check results. Never reads pytest's text output.

A check is one test case: ``<suite>::<check>[<parameter>]`` (``host::service_active[fybj-web]``)
with its result (passed, failed, error, skipped), the message, the properties the suite
recorded (``expected``, ``found``, ``host``, ``look_at``, ``evidence.*`` as JSON) and its time.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

RESULTS = ("passed", "failed", "error", "skipped")
FIELDS = ("expected", "found", "host", "look_at")


def check_id(classname: str, name: str, file: str = "") -> tuple[str, str]:
    """(suite, check id) of a test case: ``migrate.stages.verify.suites.test_host`` (or, when the
    suites live outside the rootdir, its file) and ``test_service_active[x]`` give ``host``
    and ``host::service_active[x]``."""
    module = classname.split(".")[-1] if classname else Path(file).stem
    suite = module.removeprefix("test_") or "unknown"
    return suite, f"{suite}::{name.removeprefix('test_')}"


def parse_junit(source: str | bytes | Path) -> list[dict[str, Any]]:
    """Every test case of a JUnit XML document (a path, or the text itself)."""
    root = ET.parse(source).getroot() if isinstance(source, Path) else ET.fromstring(source)
    return [_case(case) for case in root.iter("testcase")]


def _case(case: ET.Element) -> dict[str, Any]:
    suite, identifier = check_id(case.get("classname", ""), case.get("name", ""),
                                 case.get("file", ""))
    result, message, details = "passed", None, None
    for tag in ("failure", "error", "skipped"):
        found = case.find(tag)
        if found is not None:
            result = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
            message = found.get("message") or (found.text or "").strip() or None
            if message and message.startswith("Failed: "):  # pytest.fail's prefix
                message = message.removeprefix("Failed: ")
            details = (found.text or "").strip() or None
            break
    properties = {p.get("name", ""): p.get("value", "") for p in case.iter("property")}
    check: dict[str, Any] = {"id": identifier, "suite": suite, "result": result,
                             "message": _skip_reason(message) if result == "skipped" else message,
                             "time_s": round(float(case.get("time") or 0.0), 3)}
    for field in FIELDS:
        if field in properties:
            check[field] = properties[field]
    evidence = {name.removeprefix("evidence."): _json(value)
                for name, value in properties.items() if name.startswith("evidence.")}
    if evidence:
        check["evidence"] = evidence
    if result == "error" and details:
        check["details"] = details[-2000:]
    return check


def _skip_reason(message: str | None) -> str | None:
    """pytest writes a skip as ``<file>:<line>: <reason>`` in xunit1's message."""
    if message and message.count(":") >= 2 and message.split(":", 1)[0].endswith(".py"):
        return message.split(":", 2)[2].strip()
    return message


def _json(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def summarize(checks: list[dict[str, Any]]) -> dict[str, Any]:
    counts = {result: sum(c["result"] == result for c in checks) for result in RESULTS}
    return {"counts": counts, "total": len(checks),
            "passed": counts["failed"] == 0 and counts["error"] == 0 and len(checks) > 0,
            "failed": [c["id"] for c in checks if c["result"] in ("failed", "error")]}
