"""Fixtures for the legacy machines' seeding: the example estate with a secrets folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.legacy.helpers import SeededEstate, make_seeded_estate


@pytest.fixture
def seeded_estate(tmp_path: Path) -> SeededEstate:
    return make_seeded_estate(tmp_path)
