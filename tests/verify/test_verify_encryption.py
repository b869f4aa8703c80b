"""Encryption at rest in verification: where the target checks it through its cloud
(OpenStack: cinder encrypts on the hypervisor and the guest sees a plain disk), the suite's
check rests on that report and records it as evidence; it never looks for dm-crypt there."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from migrate.core.errors import EnvironmentNotReady
from migrate.orchestrate import pipeline
from migrate.stages.verify import run as verify_run
from migrate.stages.verify.suites.test_host import test_volume_encrypted as volume_encrypted
from migrate.targets.contract import Encryption, read_instance
from tests.unit.test_targets import OPENSTACK_INSTANCE, as_openstack

SYSTEM = "wjw-fybj"
REPORT = {"volume_id": "0b8e0c6e", "volume_type": "tc-luks", "provider": "luks",
          "spec_from": "GET /types/t-1/encryption", "checked_at": "2026-12-06T06:00:00Z"}


class Recorded:
    def __init__(self) -> None:
        self.properties: dict[str, Any] = {}

    def __call__(self, name: str, value: Any) -> None:
        self.properties[name] = value


def check_of(record: Recorded) -> Any:
    from migrate.stages.verify.plugin import Check

    return Check(record)


def volume(cloud: dict | None) -> dict:
    return {"name": "pgdata", "mount": "/var/lib/postgresql", "host": "wjw-fybj-db",
            "encrypted": True, "cloud_encryption": cloud}


def test_the_clouds_report_passes_and_is_the_evidence() -> None:
    record = Recorded()
    cloud = Encryption(encrypted=True, by="cinder volume type tc-luks (luks, ...)",
                       checked=REPORT).model_dump()
    volume_encrypted(volume(cloud), {"sandbox": False}, None, check_of(record))  # no guest
    assert json.loads(record.properties["evidence.cloud"])["checked"] == REPORT
    assert record.properties["found"].startswith("cinder volume type tc-luks")


@pytest.mark.parametrize("cloud", [
    {"encrypted": False, "error": "stack sys-wjw-fybj: 1 volume(s) ... has no encryption"},
    Encryption(encrypted=True, by="cinder volume type tc-luks").model_dump(),  # unchecked
])
def test_a_report_that_is_not_encrypted_and_checked_fails(cloud: dict) -> None:
    record = Recorded()
    with pytest.raises(pytest.fail.Exception, match="encrypted at rest by the cloud"):
        volume_encrypted(volume(cloud), {"sandbox": False}, None, check_of(record))


def test_openstack_verification_asks_the_target_now(estate: Path) -> None:
    as_openstack(estate)
    context = pipeline.open_context(estate)
    system = next(s for s in pipeline.make_plan(context, write=False).plan["systems"]
                  if s["id"] == SYSTEM)
    checked = read_instance("sys-wjw-fybj", "db", OPENSTACK_INSTANCE)
    encryption = Encryption(encrypted=True, by="cinder volume type tc-luks (luks)",
                            checked=REPORT)
    checked = checked.model_copy(update={"volumes": [
        checked.volumes[0].model_copy(update={"encryption": encryption})]})
    found = verify_run.cloud_encryption(context, system, lambda _context, _id: {"db": checked})
    assert found["db"]["pgdata"]["checked"] == REPORT

    def refused(_context, _id):
        raise EnvironmentNotReady("stack sys-wjw-fybj: ... has no encryption")

    found = verify_run.cloud_encryption(context, system, refused)
    assert found["db"]["pgdata"] == {"encrypted": False,
                                     "error": "stack sys-wjw-fybj: ... has no encryption"}


def test_the_sandbox_is_not_asked(estate: Path) -> None:
    context = pipeline.open_context(estate)
    system = next(s for s in pipeline.make_plan(context, write=False).plan["systems"]
                  if s["id"] == SYSTEM)
    def asked(_context, _id):
        raise AssertionError("the sandbox's instances were read")

    assert verify_run.cloud_encryption(context, system, asked) is None
