"""The all-in-one OpenStack on this host, once per test session.

``services.up`` takes about 10 s when the cloud is up, about 6 minutes for the services on
a cached image, and the image builds (about 15 minutes) on a cold machine. CI brings the
cloud up in the background while the other tests run (scripts/test.sh). If the cloud was
not running before the session, it is removed again at the end.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from migrate.errors import EnvironmentNotReady
from migrate.testcloud import api, services
from migrate.testcloud import image as tc_image
from migrate.testcloud import machine as tc_machine


@pytest.fixture(scope="session")
def cloud_root() -> Iterator[Path]:
    from migrate.sandbox import require_host

    try:
        require_host()
    except EnvironmentNotReady as error:
        pytest.skip(f"needs root and the sandbox tools: {error.message}")
    if not os.path.exists("/dev/net/tun"):
        pytest.skip("needs /dev/net/tun")
    root = tc_machine.cloud_root()
    was_running = tc_machine.Machine(root, tc_image.image_path()).status() == "running"
    services.up(root)
    yield root
    if not was_running and os.environ.get("MIGRATE_TESTCLOUD_KEEP") != "1":
        services.down(root)


@pytest.fixture(scope="session")
def clouds_yaml(cloud_root: Path) -> Path:
    return cloud_root / "clouds.yaml"


@pytest.fixture(scope="session")
def session(clouds_yaml: Path) -> api.Session:
    clouds = yaml.safe_load(clouds_yaml.read_text())
    return api.Session.from_cloud(clouds["clouds"][services.CLOUD_NAME]).authenticate()
