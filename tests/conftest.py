"""Suite-wide settings: Prefect stays in a private home with telemetry off; in CI nothing may skip."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="drplan-prefect-home-"))

_skipped: list[str] = []


def pytest_runtest_logreport(report):
    if report.skipped and not hasattr(report, "wasxfail"):
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("CI") and _skipped:
        print(f"\nCI forbids skipped tests; {len(_skipped)} skipped:")
        for nodeid in _skipped:
            print(f"  {nodeid}")
        session.exitstatus = 1
