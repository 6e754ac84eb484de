"""One Ctrl-C or one SIGTERM stops a run command within seconds, says what that means, prints no traceback and
leaves no child process behind.

The flow runs in a worker thread and the main thread only waits, so a signal is handled at once. Stopping
then goes in order: the message, everything else silenced, the caller's own clean-up (the live display, the
flow run marked in a persistent API), the child processes (Prefect's temporary server, running hooks)
terminated and reaped, then the process exits. ASR jobs already started keep running in Azure: a re-run of the
same command continues from ASR's state.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, TypeVar

T = TypeVar("T")

MESSAGE = (
    "interrupted: drplan stopped; ASR jobs already started keep running in Azure. "
    "Re-run the same command to continue from ASR's state."
)
EXIT_INTERRUPTED = 1
CLEAN_UP_SECONDS = 3.0  # at most this long for the caller's clean-up before the process exits


class Interrupted(Exception):
    """Never escapes :func:`guard`: the process exits first. Named for readers and type checkers."""


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def guard(on_interrupt: Callable[[], object] = lambda: None, *, grace: float = 1.5) -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM (main thread only) stop the process as described above."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    # Python leaves SIGINT ignored when the process started with it ignored (a shell's background job, nohup,
    # some CI runners): Ctrl-C or kill -INT would then do nothing at all
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    except KeyboardInterrupt:
        stop(on_interrupt, grace=grace)
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)


def run_interruptibly(fn: Callable[[], T], on_interrupt: Callable[[], object] = lambda: None) -> T:
    """Run ``fn`` in a daemon thread; the main thread waits, ready for a signal (see :func:`guard`)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed to the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=target, name="drplan-flow", daemon=True)
    with guard(on_interrupt):
        worker.start()
        while worker.is_alive():
            worker.join(0.2)
    if "error" in box:
        raise box["error"]
    return box["value"]


def stop(on_interrupt: Callable[[], object] = lambda: None, *, grace: float = 1.5) -> NoReturn:
    """Say it, silence the rest, clean up, end the children, exit. Further signals are ignored meanwhile."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)

    def clean_up() -> None:
        with contextlib.suppress(Exception):
            on_interrupt()

    # bounded: the caller's clean-up talks to a terminal and an API, either of which may hang; exit regardless
    worker = threading.Thread(target=clean_up, name="drplan-interrupt", daemon=True)
    worker.start()
    worker.join(CLEAN_UP_SECONDS)
    with contextlib.suppress(Exception):
        sys.stderr.write("\n" + MESSAGE + "\n")
        sys.stderr.flush()
    _silence()
    end_children(grace)
    os._exit(EXIT_INTERRUPTED)


def _silence() -> None:
    """Nothing more reaches the terminal: no log line, no thread's traceback."""
    logging.disable(logging.CRITICAL)
    threading.excepthook = lambda args: None
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)


def children(pid: int | None = None) -> list[int]:
    """Every descendant of ``pid`` (this process by default), read from /proc; children first."""
    parents: dict[int, list[int]] = {}
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    stat = f.read().decode(errors="replace")
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            parents.setdefault(ppid, []).append(int(entry))
    out: list[int] = []
    todo = [pid or os.getpid()]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def end_children(grace: float = 1.5) -> None:
    """SIGTERM every descendant, wait up to ``grace`` seconds, SIGKILL what is left; reap our own."""
    pids = children()
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while pids and time.monotonic() < deadline:
        _reap()
        pids = [p for p in pids if _alive(p)]
        time.sleep(0.05)
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    _reap()


def _reap() -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().decode(errors="replace").rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except OSError:
        return False
