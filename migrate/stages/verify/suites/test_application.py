"""Application checks: every service's health endpoint, and the catalogue interfaces
answering on the target as the source answered right before the cutover (by digest)."""

from __future__ import annotations

from typing import Any

import pytest

from migrate.stages.verify.answers import fetch_command, local_url, parse_answers


def fetch(host: Any, port: int, path: str) -> dict[str, Any]:
    url = local_url(port, path)
    done = host.run(fetch_command([url]))
    return parse_answers(done.stdout).get(url) or {
        "status": None, "error": (done.stderr.strip() or "no answer")[-200:]}


def test_health_endpoint(health: dict, hosts: Any, check: Any) -> None:
    answer = fetch(hosts[health["host"]], health["port"], health["path"])
    check.evidence("answer", answer)
    ok = answer["status"] == 200 and answer.get("status_field") in (None, "ok")
    found = (f"HTTP {answer['status']}, status {answer.get('status_field')!r}"
             if answer["status"] is not None else answer.get("error"))
    check.expect(ok, expected=f"HTTP 200 from {health['path']} of {health['service']} "
                              f"on port {health['port']}",
                 found=str(found), host=health["host"],
                 look_at=f"journalctl -u {health['service']}; its database and files")


def test_interface_answers_like_source(sample: dict, hosts: Any, check: Any) -> None:
    source = sample["source"]
    if not source:
        pytest.skip("no answer of the source was recorded before the cutover (cutover "
                    "through 'migrate cutover' records it while the source still serves)")
    answer = fetch(hosts[sample["host"]], sample["port"], sample["path"])
    check.evidence("answers", {"source": source,
                               "target": {k: answer.get(k) for k in source}})
    same = all(answer.get(k) == source[k] for k in ("status", "sha256"))

    def text(a: dict) -> str:
        if a.get("status") is None:
            return str(a.get("error"))
        return (f"HTTP {a['status']}, {a.get('bytes')} bytes, total {a.get('total')}, "
                f"sha256 {str(a.get('sha256'))[:16]}")

    check.expect(same, expected=f"GET {sample['path']} answered as by the source "
                                f"({text(source)})",
                 found=text(answer), host=sample["host"],
                 look_at=f"the rows behind {sample['resource']} (data checks), and "
                         f"{sample['service']}'s version and configuration")
