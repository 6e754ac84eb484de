"""Fixtures for the failback flow's end-to-end tests: one real Prefect engine (a session-scoped
``prefect_test_harness``) and, per test, a simulated estate served over HTTPS that the flow reaches as an
external simulator (``DRPLAN_SIM_ENDPOINT``), so tests read its audit log and tweak it live."""

from __future__ import annotations

import pytest
from failback_support import SPEED, three_tier_estate


@pytest.fixture(scope="session")
def prefect_api():
    """A real Prefect API (temporary SQLite DB) for the whole session; yields its URL."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield PREFECT_API_URL.value()


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("DRPLAN_LOCK_DIR", str(tmp_path / "locks"))
    monkeypatch.setenv("DRPLAN_APPROVAL_POLL_SECONDS", "1")
    monkeypatch.delenv("DRPLAN_SIM_ENDPOINT", raising=False)
    monkeypatch.delenv("DRPLAN_ASR_ENDPOINT", raising=False)


@pytest.fixture
def estate():
    return three_tier_estate()


@pytest.fixture
def sim(estate, monkeypatch, prefect_api):
    """The estate served over HTTPS; the flow under test finds it through the environment."""
    from drplan.sim import start_simulator

    with start_simulator(estate, speed=SPEED) as s:
        monkeypatch.setenv("DRPLAN_SIM_ENDPOINT", s.endpoint)
        monkeypatch.setenv("DRPLAN_SIM_CA_FILE", s.ca_file)
        monkeypatch.setenv("DRPLAN_SIM_TOKEN", s.token)
        yield s
