"""Fixtures of the run-model tests (helpers: ``run_support``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from run_support import THREE_TIER


@pytest.fixture
def plan_file(tmp_path) -> Callable[[str], Path]:
    """``plan_file(extra_yaml)``: the three-tier plan plus ``extra_yaml`` appended, as a file."""

    def make(extra: str) -> Path:
        path = tmp_path / "plan.yaml"
        path.write_text(THREE_TIER.read_text() + extra)
        return path

    return make
