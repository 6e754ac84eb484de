"""The ``drplan`` run commands as a person or a script runs them: a pseudo-terminal, or no terminal at all.

Each command runs in a private Prefect home (its temporary server a child of the command, as for a user).
"""

from __future__ import annotations

import os
import pty
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DRPLAN = str(Path(sys.executable).parent / "drplan")


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A clean environment: no Prefect server, no Azure credential, a private Prefect home and lock dir."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_", "AZURE_", "DRPLAN_", "IDENTITY_"))
    }
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        DRPLAN_LOCK_DIR=str(tmp_path / "locks"),
        DRPLAN_RECORD_WAIT_SECONDS="20",
        DO_NOT_TRACK="1",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        COLUMNS="80",
        TERM="xterm",
    )
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str], timeout: float = 240.0) -> subprocess.CompletedProcess:
    """Without a terminal (stdin from /dev/null), as cron, CI or a pipeline runs it."""
    return subprocess.run(
        [DRPLAN, *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class Terminal:
    """A command in a pseudo-terminal of 80x24, in its own process group (as a shell's foreground job)."""

    def __init__(self, args: list[str], env: dict[str, str], *, sigint_ignored: bool = False):
        import fcntl
        import signal
        import termios

        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        self.proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            # as a shell's background job or nohup starts it: SIGINT inherited ignored
            preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None,
        )
        os.close(slave)
        self.master = master
        self.output = b""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            self.output += data

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace")

    def wait_for(self, what: str, probe: Callable[[str], bool], timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while not probe(self.text):
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"the command ended ({self.proc.returncode}) before {what}:\n{self.text}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}:\n{self.text[-4000:]}")
            time.sleep(0.2)

    def wait_exit(self, timeout: float) -> float:
        """Seconds until the command exited (fails past ``timeout``)."""
        start = time.monotonic()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running {timeout}s after the signal:\n{self.text[-4000:]}") from None
        elapsed = time.monotonic() - start
        self._reader.join(timeout=2)
        return elapsed

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 9)
            self.proc.wait(timeout=10)
        os.close(self.master)


@pytest.fixture
def terminal() -> Iterator[Callable[..., Terminal]]:
    opened: list[Terminal] = []

    def open_(*args: str, env: dict[str, str], sigint_ignored: bool = False) -> Terminal:
        t = Terminal([DRPLAN, *args], env, sigint_ignored=sigint_ignored)
        opened.append(t)
        return t

    yield open_
    for t in opened:
        t.close()
