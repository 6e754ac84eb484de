"""``drplan sim start | estate``: run the simulated estate, or write one from a plan."""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path
from typing import Annotated

import typer

from drplan.cli import app
from drplan.cli.errors import cli_errors

sim_app = typer.Typer(
    help="The simulated estate: an ASR endpoint over HTTPS plus a simulated vCenter.", no_args_is_help=True
)
app.add_typer(sim_app, name="sim")


@sim_app.command("start")
@cli_errors
def start(
    estate: Annotated[
        Path, typer.Option("--estate", help="estate YAML (see docs/estate.md)", show_default=False)
    ],
    port: Annotated[int, typer.Option(help="TCP port on 127.0.0.1 (0: a free port)")] = 0,
    speed: Annotated[float, typer.Option(help="simulated seconds per real second")] = 600.0,
    audit: Annotated[Path | None, typer.Option(help="append the audit log (JSONL) to this file")] = None,
    token: Annotated[
        str | None,
        typer.Option(
            help="the bearer token clients must send (default: one generated now)", show_default=False
        ),
    ] = None,
) -> None:
    """Serve the estate until Ctrl-C. Prints the endpoint, the CA file, the bearer token and the environment
    to export."""
    from drplan.errors import PlanError
    from drplan.sim import Estate, start_simulator

    t0 = time.monotonic()
    model = Estate.from_yaml(estate)
    page_size = model.settings.page_size or 100
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    if token is not None and not token.strip():
        raise PlanError(["--token: the bearer token must not be empty"])
    with start_simulator(
        model, port=port, speed=speed, page_size=page_size, audit_path=audit, token=token
    ) as sim:
        out = sys.stdout
        out.write(f"drplan simulator ready in {time.monotonic() - t0:.2f}s\n")
        out.write(f"endpoint:  {sim.endpoint}\n")
        out.write(f"CA file:   {sim.ca_file}\n")
        out.write(f"token:     {sim.token}\n")
        out.write(f"vault:     {sim.subscription_id}/{sim.resource_group}/{sim.vault}\n")
        out.write(f"speed:     {sim.clock.speed:g}x (simulated now {sim.clock.now().isoformat()})\n")
        out.write("export:\n")
        for k, v in sim.env().items():
            out.write(f"  export {k}={v}\n")
        out.write("Press Ctrl-C to stop.\n")
        out.flush()
        while not stop.wait(0.5):
            pass
    sys.stdout.write("simulator stopped\n")


@sim_app.command("estate")
@cli_errors
def estate_from_plan(
    plan: Annotated[Path, typer.Argument(help="the plan file (YAML)", show_default=False)],
    seed: Annotated[int, typer.Option(help="seed for generated details")] = 0,
    phase: Annotated[str, typer.Option(help="initial phase of every VM")] = "reprotected-to-onprem",
    # modernized by default: classic VMware/physical DR is out of support since March 2026
    provider: Annotated[
        str,
        typer.Option(help="ASR stack: modernized (appliances, InMageRcm) or classic (configuration server)"),
    ] = "modernized",
) -> None:
    """Print an estate YAML holding every VM and group of PLAN (ready to fail back) on the PROVIDER stack."""
    from drplan.errors import PlanError
    from drplan.observed import Phase
    from drplan.plan.loader import load_plan
    from drplan.sim import Estate

    try:
        initial = Phase(phase)
    except ValueError:
        raise PlanError(
            [
                f"--phase: unknown phase {phase!r}; use one of "
                f"{', '.join(p.value for p in Phase if p != Phase.unknown)}"
            ]
        ) from None
    if provider not in ("modernized", "classic"):
        raise PlanError([f"--provider: unknown provider {provider!r}; use modernized or classic"])
    estate = Estate.from_plan(load_plan(plan), seed=seed, phase=initial, provider=provider)  # type: ignore[arg-type]
    sys.stdout.write(estate.to_yaml())
