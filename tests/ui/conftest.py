"""A real ``prefect server`` with its UI, for the browser and secret tests; the ``drplan`` CLI run against it.

One server per session (it takes ~15 s to start); runs of the same plan go one after another, as a plan
allows. Settings as in ``tests/deploy/processes.py``, with the UI on.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.processes import Server, prefect_server

ROOT = Path(__file__).resolve().parents[2]
DRPLAN = [str(Path(sys.executable).parent / "drplan")]


@pytest.fixture(scope="session")
def ui_server(tmp_path_factory) -> Iterator[Server]:
    with prefect_server(tmp_path_factory.mktemp("prefect-ui-home"), startup_timeout=180, ui=True) as server:
        yield server


def drplan(server: Server, *args: str, env: dict[str, str] | None = None, timeout: float = 240.0):
    """Run ``drplan ARGS`` as an operator would, against ``server``, without a terminal."""
    full = {**server.env, "PREFECT_HOME": str(server.home), "DRPLAN_RECORD_WAIT_SECONDS": "60", **(env or {})}
    return subprocess.run(
        [*DRPLAN, *args],
        cwd=ROOT,
        env=full,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def screenshot_dir() -> Path:
    """Where the screenshots go: ``$DRPLAN_SCREENSHOTS`` or ``.cache/ui-screenshots`` (kept after the run)."""
    path = Path(os.environ.get("DRPLAN_SCREENSHOTS") or ROOT / ".cache" / "ui-screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path
