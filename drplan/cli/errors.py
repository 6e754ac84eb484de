"""Turn drplan's errors into clean CLI output and exit codes, never a traceback.

Exit codes: 0 ok, 1 run failed, 2 invalid input. Use as a decorator on a typer command
(``@cli_errors``) or as a context manager (``with cli_errors(): ...``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import typer

from drplan.errors import DrplanError, PlanError

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2

F = TypeVar("F", bound=Callable)


def print_problems(problems: list[str]) -> None:
    """Every problem on its own line on stderr, then a count."""
    for problem in problems:
        typer.echo(problem, err=True)
    if len(problems) > 1:
        typer.echo(f"{len(problems)} problems", err=True)


@contextmanager
def _handle() -> Iterator[None]:
    try:
        yield
    except PlanError as exc:
        print_problems(exc.problems)
        raise typer.Exit(EXIT_INVALID) from None
    except DrplanError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_FAILED) from None


class _CliErrors:
    """Both a decorator and a context manager."""

    def __call__(self, fn: F | None = None):
        if fn is None:
            return _handle()

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with _handle():
                return fn(*args, **kwargs)

        return wrapper


cli_errors = _CliErrors()
