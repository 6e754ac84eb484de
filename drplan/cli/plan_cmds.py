"""``drplan validate | graph | plan | schema``: the commands that need no connection.

Rich tables for people, ``--json`` for machines. Exit codes: 0 ok, 1 run failed, 2 invalid input.

Extension point for the dry run: :func:`dry_run_report` takes optional per-unit extra columns
(``points={unit: {column: value}}``, e.g. the recovery points a connected or simulated run would
choose); :func:`print_dry_run` renders whatever columns the report carries.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from drplan.cli import app
from drplan.cli.errors import EXIT_INVALID, cli_errors
from drplan.errors import PlanError
from drplan.plan.graph import RecoveryGraph, load_and_compile
from drplan.plan.schema import Plan, format_duration, plan_json_schema
from drplan.plan.validate import Problem

PlanArg = Annotated[Path, typer.Argument(help="the plan file (YAML)", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON for machines")]


def _console() -> Console:
    console = Console(highlight=False)
    if not console.is_terminal:  # a pipe or a file: do not squeeze tables into 80 columns
        console = Console(highlight=False, width=160)
    return console


def _print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def _dur(seconds: float | None) -> str:
    return "-" if seconds is None else format_duration(seconds)


# -- validate ----------------------------------------------------------------------------------------


@app.command()
def validate(
    plans: Annotated[list[Path], typer.Argument(help="plan files (YAML)", show_default=False)],
    json_out: JsonOpt = False,
) -> None:
    """Check plans: schema, names, groups, master targets, dependency cycles. Exit 2 if any is invalid."""
    problems: list[Problem] = []
    summaries: list[str] = []
    for path in plans:
        try:
            plan, graph = load_and_compile(path)
        except PlanError as exc:
            problems += [
                p if isinstance(p, Problem) else Problem(str(path), None, None, "", p) for p in exc.problems
            ]
            continue
        hooks = sum(1 for u in graph.units.values() if u.kind == "hook")
        summaries.append(
            f"{path}: ok ({len(plan.vms)} VMs, {len(graph.units) - hooks} units, {hooks} hooks, "
            f"estimated RTO {_dur(graph.estimated_rto)})"
        )
    if json_out:
        _print_json([p.to_dict() for p in problems])
    else:
        for line in summaries:
            typer.echo(line)
        for problem in problems:
            typer.echo(problem)
        if problems:
            bad = len({p.file for p in problems})
            count = f"{len(problems)} problem{'s' * (len(problems) != 1)}"
            typer.echo(f"{count} in {bad} of {len(plans)} plan{'s' * (len(plans) != 1)}", err=True)
    if problems:
        raise typer.Exit(EXIT_INVALID)


# -- graph -------------------------------------------------------------------------------------------


class GraphFormat(StrEnum):
    mermaid = "mermaid"
    dot = "dot"
    text = "text"


def _label(graph: RecoveryGraph, name: str) -> str:
    unit = graph.units[name]
    if unit.kind == "group":
        return f"{name} ({', '.join(unit.vm_names)})"
    if unit.hook is not None:
        return f"{unit.hook.kind}: {name}"
    return name


def render_mermaid(graph: RecoveryGraph) -> str:
    ids = {name: f"n{i}" for i, name in enumerate(graph.order)}
    shapes = {"vm": ('["', '"]'), "group": ('[["', '"]]'), "hook": ('{{"', '"}}')}
    lines = ["flowchart LR"]
    for name in graph.order:
        left, right = shapes[graph.units[name].kind]
        lines.append(f"  {ids[name]}{left}{_label(graph, name).replace(chr(34), '#quot;')}{right}")
    for u, v in sorted(graph.digraph.edges, key=lambda e: (ids[e[0]], ids[e[1]])):
        lines.append(f"  {ids[u]} --> {ids[v]}")
    critical, _ = graph.critical_path
    if critical:
        lines.append("  classDef critical stroke-width:3px")
        lines.append(f"  class {','.join(ids[n] for n in critical)} critical")
    return "\n".join(lines) + "\n"


def render_dot(graph: RecoveryGraph) -> str:
    shapes = {"vm": "box", "group": "box3d", "hook": "hexagon"}
    critical = set(graph.critical_path[0])
    lines = [f"digraph {json.dumps(graph.plan_name)} {{", "  rankdir=LR;"]
    for name in graph.order:
        attrs = f"shape={shapes[graph.units[name].kind]}, label={json.dumps(_label(graph, name))}"
        if name in critical:
            attrs += ", penwidth=3"
        lines.append(f"  {json.dumps(name)} [{attrs}];")
    for u, v in sorted(graph.digraph.edges):
        lines.append(f"  {json.dumps(u)} -> {json.dumps(v)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_text(graph: RecoveryGraph) -> str:
    path, seconds = graph.critical_path
    lines = [
        f"{graph.plan_name}: {len(graph.units)} nodes in {len(graph.generations)} generations, "
        f"estimated RTO {_dur(seconds)} (critical path: {' -> '.join(path) or '-'})"
    ]
    width = max((len(n) for n in graph.order), default=0)
    for i, generation in enumerate(graph.generations, 1):
        lines.append(f"generation {i}")
        for name in generation:
            unit = graph.units[name]
            deps = f"  after {', '.join(unit.depends_on)}" if unit.depends_on else ""
            what = unit.hook.kind if unit.hook else ", ".join(unit.vm_names)
            lines.append(f"  {name:<{width}}  {unit.kind:<5}  {what}{deps}")
    return "\n".join(lines) + "\n"


_RENDERERS = {GraphFormat.mermaid: render_mermaid, GraphFormat.dot: render_dot, GraphFormat.text: render_text}


@app.command()
@cli_errors
def graph(
    plan: PlanArg,
    fmt: Annotated[GraphFormat, typer.Option("--format", "-f", help="output format")] = GraphFormat.mermaid,
) -> None:
    """Print the plan's dependency graph (mermaid by default)."""
    _, compiled = load_and_compile(plan)
    sys.stdout.write(_RENDERERS[fmt](compiled))


# -- plan (dry run) ----------------------------------------------------------------------------------


def dry_run_report(
    plan: Plan, graph: RecoveryGraph, points: Mapping[str, Mapping[str, object]] | None = None
) -> dict:
    """The dry run as JSON-ready data. ``points`` adds per-unit columns, ``{unit: {column: value}}``
    (for instance the recovery point each VM would fail back to); units without an entry get None."""
    generation_of = {name: i for i, gen in enumerate(graph.generations, 1) for name in gen}
    path, seconds = graph.critical_path
    critical = set(path)
    extra_columns = list(dict.fromkeys(col for cols in (points or {}).values() for col in cols))
    steps = []
    for step, name in enumerate(graph.order, 1):
        unit = graph.units[name]
        row: dict[str, object] = {
            "step": step,
            "generation": generation_of[name],
            "unit": name,
            "kind": unit.kind,
            "vms": list(unit.vm_names),
            "hook": unit.hook.kind if unit.hook else None,
            "policy": str(unit.policy) if unit.policy else None,
            "max_data_loss": unit.max_data_loss,
            "depends_on": list(unit.depends_on),
            "estimate": unit.estimate,
            "critical": name in critical,
        }
        unit_points = (points or {}).get(name, {})
        row.update({col: unit_points.get(col) for col in extra_columns})
        steps.append(row)
    return {
        "plan": plan.name,
        "description": plan.description,
        "vms": len(plan.vms),
        "units": sum(1 for u in graph.units.values() if u.kind != "hook"),
        "hooks": sum(1 for u in graph.units.values() if u.kind == "hook"),
        "commit": str(plan.failback.commit),
        "reprotect_to_azure": plan.failback.reprotect_to_azure.enabled,
        "order": list(graph.order),
        "generations": [list(g) for g in graph.generations],
        "critical_path": list(path),
        "estimated_rto": seconds,
        "extra_columns": extra_columns,
        "steps": steps,
    }


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value)) or "-"
    return str(value)


def print_dry_run(report: dict, console: Console | None = None) -> None:
    """Render :func:`dry_run_report` output for people."""
    console = console or _console()
    title = f"Dry run of plan {report['plan']}"
    if report["description"]:
        title += f": {report['description']}"
    console.print(escape(title), style="bold")
    console.print(
        f"{report['vms']} VMs in {report['units']} units, {report['hooks']} hooks, "
        f"{len(report['generations'])} generations; commit: {report['commit']}; "
        f"reprotect to Azure: {'on' if report['reprotect_to_azure'] else 'off'}"
    )
    table = Table(show_lines=False)
    for header in ("#", "gen", "unit", "kind", "VMs", "policy", "max data loss", "after", "estimate"):
        table.add_column(header, overflow="fold", no_wrap=header in ("#", "gen"))
    for col in report["extra_columns"]:
        table.add_column(col.replace("_", " "), overflow="fold")
    for row in report["steps"]:
        kind = f"hook ({row['hook']})" if row["hook"] else row["kind"]
        cells = [
            str(row["step"]),
            str(row["generation"]),
            row["unit"] + (" *" if row["critical"] else ""),
            kind,
            _cell(row["vms"]),
            _cell(row["policy"]),
            _dur(row["max_data_loss"]),
            _cell(row["depends_on"]),
            _dur(row["estimate"]),
            *(_cell(row[col]) for col in report["extra_columns"]),
        ]
        table.add_row(*map(escape, cells), style="bold" if row["critical"] else None)
    console.print(table)
    path = " -> ".join(report["critical_path"]) or "-"
    rto = _dur(report["estimated_rto"])
    console.print(escape(f"Estimated RTO: {rto} (critical path, marked *: {path})"), style="bold")


def show_dry_run(
    plan: Plan,
    graph: RecoveryGraph,
    *,
    json_out: bool,
    points: Mapping[str, Mapping[str, object]] | None = None,
) -> None:
    report = dry_run_report(plan, graph, points)
    if json_out:
        _print_json(report)
    else:
        print_dry_run(report)


@app.command("plan")
@cli_errors
def plan_cmd(
    plan: PlanArg,
    json_out: JsonOpt = False,
    simulate: Annotated[
        bool, typer.Option("--simulate", help="read the points from the embedded simulated estate")
    ] = False,
    estate: Annotated[
        Path | None, typer.Option("--estate", help="simulated estate file (implies --simulate)")
    ] = None,
    connect: Annotated[
        bool,
        typer.Option("--connect", help="read the points from the plan's real vault (or DRPLAN_SIM_ENDPOINT)"),
    ] = False,
) -> None:
    """Dry run: order, generations, estimated RTO and each unit's recovery point policy. Changes nothing.

    With --simulate or --connect it also reads ASR and shows the recovery point each VM would fail back to,
    its time and its data-loss window.
    """
    loaded, compiled = load_and_compile(plan)
    if not (simulate or estate or connect):
        show_dry_run(loaded, compiled, json_out=json_out)
        return
    from drplan.failback.point_preview import chosen_points
    from drplan.run.targets import open_targets
    from drplan.settings import Settings

    where = {"simulate": simulate, "estate": str(estate) if estate else None, "settings": Settings()}
    with open_targets(loaded, **where) as targets:  # type: ignore[arg-type]
        columns, choices = chosen_points(
            compiled, targets.asr, targets.clock.now(), group_mode=loaded.failback.group_failback_mode
        )
    report = dry_run_report(loaded, compiled, columns)
    report["mode"] = targets.mode
    report["choices"] = choices
    if json_out:
        _print_json(report)
    else:
        print_dry_run(report)
    if any("problem" in cols for cols in columns.values()):
        raise typer.Exit(1)


# -- schema ------------------------------------------------------------------------------------------


def schema_text() -> str:
    """The plan JSON Schema as committed in ``plans/plan.schema.json``."""
    return json.dumps(plan_json_schema(), indent=2) + "\n"


@app.command()
@cli_errors
def schema(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write to this file instead of stdout")
    ] = None,
) -> None:
    """Print (or write) the plan's JSON Schema, for editors and CI."""
    text = schema_text()
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        typer.echo(f"error: cannot write {output}: {exc.strerror or exc}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    typer.echo(f"wrote {output}", err=True)
