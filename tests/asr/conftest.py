"""Fixtures: the simulated estate over HTTPS (stopped after each test)."""

from __future__ import annotations

from contextlib import ExitStack

import pytest
from asr_helpers import SPEED

from drplan.sim import Estate, start_simulator


@pytest.fixture
def simulate():
    """``simulate(estate, **start_simulator kwargs)`` → a running simulator (stopped after the test)."""
    with ExitStack() as stack:

        def start(estate: Estate, **kwargs):
            kwargs.setdefault("speed", SPEED)
            return stack.enter_context(start_simulator(estate, **kwargs))

        yield start
