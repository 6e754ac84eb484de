"""The ``drplan`` command line. Each command group lives in its own module and registers on ``app``.

Exit codes: 0 ok, 1 run failed, 2 invalid input. User errors never print a traceback.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="drplan",
    help="Recovery plans as code for Azure Site Recovery failback from Azure to on-prem VMware.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    # Imported for their side effect of adding commands to ``app``.
    from drplan.cli import plan_cmds, run_cmds, sim_cmds  # noqa: F401


def main() -> None:
    _register()
    app()
