"""Fixtures for the engine tests: an isolated cache dir, and the built engine when present."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrate.adapters.engine import PULUMI_VERSION, find_engine


@pytest.fixture
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache dir of the test's own, and a PATH on which no `pulumi` can be found."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("MIGRATE_CACHE_DIR", str(cache))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    return cache


@pytest.fixture(scope="session")
def built_engine() -> Path:
    """The pinned engine; the test is skipped (with how to build it) when it is missing."""
    pulumi = find_engine()
    if pulumi is None:
        pytest.skip(
            f"the Pulumi engine v{PULUMI_VERSION} is not built: run `scripts/build_pulumi.sh` "
            "(about 10 minutes on 2 cores, needs Go and the Go module proxy)"
        )
    return pulumi
