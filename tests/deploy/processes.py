"""A real ``prefect server`` and process worker for end-to-end tests: private home, fresh SQLite, loopback.

Settings follow ../shared/prefect-notes.md §4 (batched task-run recorder and event persister, telemetry off).
Every wait is bounded and polls the API; processes are stopped by PID with escalating signals.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

import httpx

T = TypeVar("T")

PREFECT = [sys.executable, "-m", "prefect"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(home: Path, api_url: str) -> dict[str, str]:
    """The environment for the server, the CLI, the worker and its flow runs (prefect-notes §4)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_API_URL=api_url,
        PREFECT_SERVER_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE="500",
        PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE="500",
        PREFECT_SERVER_DATABASE_TIMEOUT="30",
        PREFECT_SERVER_DATABASE_CONNECTION_TIMEOUT="10",
        PREFECT_TASKS_RUNNER_THREAD_POOL_MAX_WORKERS="32",
        PREFECT_RESULTS_LOCAL_STORAGE_PATH=str(home / "results"),
        PREFECT_WORKER_QUERY_SECONDS="1",
        PREFECT_UI_ENABLED="false",
    )
    return env


def wait_until(what: str, probe: Callable[[], T | None], *, timeout: float, interval: float = 0.5) -> T:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def stop(
    proc: subprocess.Popen, *, signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT), grace: float = 10.0
) -> None:
    """Stop ``proc`` (started with its own session) by PID: each signal in turn, then SIGKILL to its group.

    A Prefect worker ignores a single SIGTERM for 30 s or more (prefect-notes §4.6): escalate.
    """
    for sig in signals:
        if proc.poll() is not None:
            break
        proc.send_signal(sig)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=grace)
    # Children (flow-run processes) live in the same session/group, whose id is the process's PID.
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


class Server:
    """A running ``prefect server`` plus a small REST client for it."""

    def __init__(self, home: Path, port: int, proc: subprocess.Popen, log: Path):
        self.home, self.port, self.proc, self.log = home, port, proc, log
        self.api_url = f"http://127.0.0.1:{port}/api"
        self.env = server_env(home, self.api_url)
        self.http = httpx.Client(base_url=self.api_url, timeout=30.0)

    def cli(self, *args: str, cwd: Path, timeout: float = 120.0) -> subprocess.CompletedProcess:
        """Run ``prefect ARGS`` as a user would, against this server; fail with its output if it fails."""
        done = subprocess.run(
            [*PREFECT, *args], cwd=cwd, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        assert done.returncode == 0, (
            f"prefect {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        )
        return done

    def get(self, path: str) -> Any:
        r = self.http.get(path)
        r.raise_for_status()
        return r.json()

    def post(self, path: str, body: Any) -> Any:
        r = self.http.post(path, json=body)
        r.raise_for_status()
        return r.json() if r.content else None

    def tail(self, n: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:]) if self.log.exists() else ""


def _healthy(http: httpx.Client, proc: subprocess.Popen, log: Path) -> bool:
    if proc.poll() is not None:
        output = log.read_text(errors="replace")
        raise AssertionError(f"prefect server exited with {proc.returncode}:\n{output}")
    try:
        return http.get("/health").status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def prefect_server(home: Path, *, startup_timeout: float = 120.0, ui: bool = False) -> Iterator[Server]:
    """Start ``prefect server start`` on 127.0.0.1 (free port, fresh SQLite under ``home``, the UI only when
    asked); stop it after."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = home / "server.log"
    env = {**server_env(home, f"http://127.0.0.1:{port}/api"), "PREFECT_UI_ENABLED": str(ui).lower()}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                *PREFECT,
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *([] if ui else ["--no-ui"]),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=home,
        )
    server = Server(home, port, proc, log)
    server.env = env
    try:
        wait_until(
            "the prefect server's /health", lambda: _healthy(server.http, proc, log), timeout=startup_timeout
        )
        yield server
    finally:
        server.http.close()
        stop(proc, signals=(signal.SIGTERM,), grace=15.0)


@contextmanager
def process_worker(server: Server, pool: str, *, cwd: Path, limit: int = 2) -> Iterator[subprocess.Popen]:
    """Start ``prefect worker start --type process`` polling every second; stop it by escalating signals."""
    log = server.home / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*PREFECT, "worker", "start", "--pool", pool, "--type", "process", "--limit", str(limit)],
            env=server.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=cwd,
        )
    try:
        yield proc
    finally:
        stop(proc)
