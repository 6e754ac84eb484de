"""Processes the harness starts and stops: the simulator process, PostgreSQL and a Prefect server on it.

All bind to 127.0.0.1 with private data directories; each is stopped by the pid the harness started.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PG_BIN = Path(os.environ.get("DRPLAN_BENCH_PG_BIN", "/usr/lib/postgresql/15/bin"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PREFECT_API_URL", None)  # only where the harness sets it: the default is the local engine
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    env.update(
        {
            "DO_NOT_TRACK": "1",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            # a fresh PREFECT_HOME migrates on the first start; 20 s is not enough on a busy 2-core box
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        }
    )
    env.update(extra)
    return env


def stop_process(proc: subprocess.Popen, *, grace: float = 10.0) -> None:
    """SIGINT, then SIGTERM, then SIGKILL (Prefect processes may ignore a single signal; prefect-notes §4)."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)


class SimProcess:
    """``python -m benchmarks.simproc`` for one run: its environment, its ARM request counts."""

    def __init__(self, plan: Path, workload_json: Path, *, speed: float = 1.0, log: Path | None = None):
        self._log = open(log or os.devnull, "ab")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.simproc",
                str(plan),
                str(workload_json),
                "--speed",
                f"{speed:g}",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            cwd=REPO,
            env=child_env(),
        )
        line = self.proc.stdout.readline()
        if not line:
            self.stop()
            raise RuntimeError(f"the simulator process did not start (see {log})")
        self.env: dict[str, str] = json.loads(line)

    def _ask(self, cmd: str) -> dict:
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def counts(self) -> dict[tuple[str, str], int]:
        return {(m, op): n for m, op, n in self._ask("counts")["counts"]}

    def reset(self) -> None:
        self._ask("reset")

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
        stop_process(self.proc)
        self._log.close()


def _as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the ``postgres`` user then."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


@contextlib.contextmanager
def postgres(workdir: Path) -> Iterator[str]:
    """A private PostgreSQL cluster on 127.0.0.1 with database ``prefect``; yields its asyncpg URL."""
    data = Path(tempfile.mkdtemp(prefix="drplan-bench-pg-", dir=workdir))
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
        os.chmod(workdir, 0o755)
    port = free_port()
    subprocess.run(
        _as_postgres(
            [str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8"]
        ),
        check=True,
        capture_output=True,
    )
    opts = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off"
    subprocess.run(
        _as_postgres(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                opts,
                "-l",
                str(data / "server.log"),
                "-w",
                "start",
            ]
        ),
        check=True,
        capture_output=True,
    )
    try:
        subprocess.run(
            _as_postgres(
                [str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "prefect"]
            ),
            check=True,
            capture_output=True,
        )
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}/prefect"
    finally:
        subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
            check=False,
            capture_output=True,
        )
        shutil.rmtree(data, ignore_errors=True)


#: server settings from /work/shared/prefect-notes.md §4 (batched task-run recorder and event persister)
TUNED_SERVER = {
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "500",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE": "500",
    "PREFECT_SERVER_DATABASE_TIMEOUT": "30",
    "PREFECT_SERVER_DATABASE_CONNECTION_TIMEOUT": "10",
}


class PrefectServer:
    """``prefect server start`` on 127.0.0.1 against ``db_url``; ``api_url`` once healthy."""

    def __init__(self, db_url: str, home: Path, *, log: Path, tuned: bool = True, timeout: float = 120.0):
        port = free_port()
        self.api_url = f"http://127.0.0.1:{port}/api"
        self._log = open(log, "ab")  # noqa: SIM115 (closed in stop)
        env = child_env(
            PREFECT_HOME=str(home),
            PREFECT_SERVER_DATABASE_CONNECTION_URL=db_url,
            **(TUNED_SERVER if tuned else {}),
        )
        env.pop("PREFECT_API_URL", None)
        self.proc = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("prefect")),
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-ui",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=home,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(self.api_url + "/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"prefect server did not become healthy (see {log})")
            time.sleep(0.5)

    def peak_rss_mb(self) -> float | None:
        """Peak RSS of the server: the largest VmHWM among the server process and its children."""
        import psutil

        from benchmarks.orchestrate import peak_rss_mb

        try:
            procs = [psutil.Process(self.proc.pid), *psutil.Process(self.proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return None
        return max((peak_rss_mb(p.pid) or 0 for p in procs), default=None) or None

    def stop(self) -> None:
        stop_process(self.proc)
        self._log.close()
