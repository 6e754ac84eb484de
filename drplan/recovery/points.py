"""Recovery-point policy: which point each VM of a unit fails back to, and how much data that loses.

Pure functions over :class:`~drplan.observed.RecoveryPoint` lists (no I/O). The rules come from the failback
doc: ``latest`` gives every VM its own newest point (also inside a replication group);
``latest-app-consistent`` its own newest app-consistent point; ``common-app-consistent`` gives every member of
a replication group its point at the newest time at which *all* members have an app-consistent multi-VM sync
point. App-consistent points lie in the past, so each choice carries its data-loss window: the VM's newest
available point minus the chosen point.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from drplan.errors import RecoveryPointError
from drplan.observed import CheckResult, RecoveryPoint
from drplan.plan.schema import RecoveryPointPolicy, format_duration

__all__ = [
    "Choice",
    "PointDecision",
    "decide",
    "check_all_have_points",
    "choose_for_unit",
    "choose_points",
    "point_checks",
]

NO_POINT_RULE = "every VM has at least one recovery point"

_ZERO = timedelta(0)


@dataclass(frozen=True, slots=True)
class Choice:
    """The point chosen for one VM, why, and the data it loses compared with its newest point."""

    vm: str
    point: RecoveryPoint
    policy: RecoveryPointPolicy
    reason: str
    latest: RecoveryPoint  # the VM's newest available point of any kind
    data_loss: timedelta  # latest.time - point.time, never negative

    @property
    def data_loss_seconds(self) -> float:
        return self.data_loss.total_seconds()

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form for ``drplan plan --json``."""
        return {
            "vm": self.vm,
            "policy": str(self.policy),
            "point_id": self.point.id,
            "point_time": self.point.time.isoformat(),
            "app_consistent": self.point.app_consistent,
            "multi_vm_sync": self.point.multi_vm_sync,
            "reason": self.reason,
            "latest_time": self.latest.time.isoformat(),
            "data_loss_seconds": self.data_loss_seconds,
        }


class UnitLike(Protocol):
    """What :func:`choose_points` needs from a compiled unit (``drplan.plan.graph.Unit``)."""

    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def vms(self) -> Sequence[Any]: ...  # plan Vm objects (anything with ``.name``)
    @property
    def policy(self) -> RecoveryPointPolicy | None: ...
    @property
    def max_data_loss(self) -> float | None: ...


def _fmt_time(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def _newest(points: Iterable[RecoveryPoint]) -> RecoveryPoint | None:
    """Newest point; on equal times prefer app-consistent, then multi-VM sync, then the id (deterministic)."""
    return max(points, key=lambda p: (p.time, p.app_consistent, p.multi_vm_sync, p.id), default=None)


def _newest_of(points: Iterable[RecoveryPoint]) -> RecoveryPoint:
    """Newest point of a list known not to be empty."""
    newest = _newest(points)
    if newest is None:
        raise RecoveryPointError("no recovery point")
    return newest


def _is_app(p: RecoveryPoint) -> bool:
    return p.app_consistent


def _is_sync(p: RecoveryPoint) -> bool:
    return p.app_consistent and p.multi_vm_sync


def _missing(points_by_vm: Mapping[str, Sequence[RecoveryPoint]], vms: Iterable[str]) -> list[str]:
    return [vm for vm in vms if not points_by_vm.get(vm)]


def _no_point_message(vm: str) -> str:
    return f"cannot fail back VM {vm}: it has no recovery point yet"


def _choice(
    vm: str, point: RecoveryPoint, latest: RecoveryPoint, policy: RecoveryPointPolicy | str, reason: str
) -> Choice:
    return Choice(
        vm, point, RecoveryPointPolicy(policy), reason, latest, max(latest.time - point.time, _ZERO)
    )


def choose_for_unit(
    policy: RecoveryPointPolicy | str,
    points_by_vm: Mapping[str, Sequence[RecoveryPoint]],
    *,
    now: datetime,
    max_data_loss: float | timedelta | None = None,
    unit: str | None = None,
    sync_known: bool = True,
) -> dict[str, Choice]:
    """Choose every VM's point for one unit (a standalone VM, or the members of one replication group).

    ``points_by_vm`` maps each VM of the unit to its recovery points (any order). ``now`` is the time the
    ``max_data_loss`` guard measures a point's age against. ``unit`` names a replication group (``None``: a
    standalone VM); a group, even of one member, fails back to multi-VM sync points as ASR's group does
    (``latest`` excepted: every VM to its own newest point).

    Raises :class:`RecoveryPointError` naming every VM concerned when a VM has no point at all, when the
    policy finds no valid point, or when a chosen point is older than ``max_data_loss``.
    """
    policy = RecoveryPointPolicy(policy)
    vms = list(points_by_vm)
    if not vms:
        raise RecoveryPointError(
            f"cannot choose recovery points for {unit or 'an empty unit'}: it has no VMs"
        )
    missing = _missing(points_by_vm, vms)
    if missing:
        where = f" (group {unit})" if unit else ""
        raise RecoveryPointError(
            "\n".join(_no_point_message(vm).replace(":", f"{where}:", 1) for vm in missing)
        )
    latest = {vm: _newest_of(points_by_vm[vm]) for vm in vms}

    if policy is RecoveryPointPolicy.latest:
        choices = {
            vm: _choice(
                vm,
                latest[vm],
                latest[vm],
                policy,
                f"latest: newest point of VM {vm} "
                f"({'app' if latest[vm].app_consistent else 'crash'}-consistent)",
            )
            for vm in vms
        }
    elif policy is RecoveryPointPolicy.latest_app_consistent or unit is None:
        choices = _latest_app_consistent(policy, points_by_vm, latest)
    else:
        choices = _common_app_consistent(points_by_vm, latest, unit, sync_known)

    if max_data_loss is not None:
        _guard(choices, now=now, limit=max_data_loss, unit=unit)
    return choices


def _latest_app_consistent(
    policy: RecoveryPointPolicy,
    points_by_vm: Mapping[str, Sequence[RecoveryPoint]],
    latest: Mapping[str, RecoveryPoint],
) -> dict[str, Choice]:
    problems: list[str] = []
    choices: dict[str, Choice] = {}
    for vm, points in points_by_vm.items():
        app = _newest(p for p in points if p.app_consistent)
        if app is None:
            problems.append(
                f"cannot fail back VM {vm} to an app-consistent point: it has none "
                f"(its newest point, {_fmt_time(latest[vm].time)}, is crash-consistent)"
            )
            continue
        note = ""
        if policy is RecoveryPointPolicy.common_app_consistent:
            note = " (common-app-consistent on a single VM)"
        choices[vm] = _choice(
            vm, app, latest[vm], policy, f"{policy}: newest app-consistent point of VM {vm}{note}"
        )
    if problems:
        raise RecoveryPointError("\n".join(problems))
    return choices


def _common_app_consistent(
    points_by_vm: Mapping[str, Sequence[RecoveryPoint]],
    latest: Mapping[str, RecoveryPoint],
    unit: str | None,
    sync_known: bool = True,
) -> dict[str, Choice]:
    """``sync_known`` off: the listing does not say which points are multi-VM sync points (InMageRcmFailback
    points carry no provider details), so app-consistent points at a time every member has stand in."""
    usable: Callable[[RecoveryPoint], bool] = _is_sync if sync_known else _is_app
    sync_by_vm = {vm: [p for p in pts if usable(p)] for vm, pts in points_by_vm.items()}
    common: set[datetime] | None = None
    for synced in sync_by_vm.values():
        times = {p.time for p in synced}
        common = times if common is None else common & times
    group = f"group {unit}" if unit else "the group"
    if not common:
        lines = [f"cannot fail back {group}: its members share no app-consistent multi-VM sync point"]
        for vm, pts in points_by_vm.items():
            app = _newest(p for p in pts if p.app_consistent)
            sync = _newest(sync_by_vm[vm])
            lines.append(
                f"  VM {vm}: newest app-consistent point "
                f"{_fmt_time(app.time) if app else 'none'}"
                f", newest multi-VM sync point {_fmt_time(sync.time) if sync else 'none'}"
            )
        raise RecoveryPointError("\n".join(lines))
    when = max(common)
    n = len(points_by_vm)
    return {
        vm: _choice(
            vm,
            _newest_of(p for p in sync_by_vm[vm] if p.time == when),
            latest[vm],
            RecoveryPointPolicy.common_app_consistent,
            f"common-app-consistent: newest multi-VM sync point shared by all {n} members of {group} "
            f"({_fmt_time(when)})",
        )
        for vm in points_by_vm
    }


def _guard(
    choices: Mapping[str, Choice], *, now: datetime, limit: float | timedelta, unit: str | None
) -> None:
    limit_td = limit if isinstance(limit, timedelta) else timedelta(seconds=float(limit))
    problems: list[str] = []
    for vm, c in choices.items():
        age = max(now - c.point.time, _ZERO)
        if age > limit_td:
            problems.append(
                f"cannot fail back VM {vm}: its chosen recovery point "
                f"({_fmt_time(c.point.time)}, {c.policy}) "
                f"is {format_duration(age.total_seconds())} old, more than max_data_loss "
                f"{format_duration(limit_td.total_seconds())}"
                + (f" (group {unit})" if unit and len(choices) > 1 else "")
            )
    if problems:
        raise RecoveryPointError("\n".join(problems))


def point_checks(
    vms: Iterable[str], points_by_vm: Mapping[str, Sequence[RecoveryPoint]]
) -> list[CheckResult]:
    """One preflight check per VM: it has at least one recovery point (failback doc rule)."""
    out: list[CheckResult] = []
    for vm in vms:
        ok = bool(points_by_vm.get(vm))
        out.append(
            CheckResult(
                name=f"recovery-point {vm}",
                ok=ok,
                message="" if ok else _no_point_message(vm),
                subject=vm,
                rule=NO_POINT_RULE,
            )
        )
    return out


def check_all_have_points(vms: Iterable[str], points_by_vm: Mapping[str, Sequence[RecoveryPoint]]) -> None:
    """The plan rule: before any write, every VM of the plan has at least one point. One error lists all."""
    missing = [c.message for c in point_checks(vms, points_by_vm) if not c.ok]
    if missing:
        raise RecoveryPointError(
            f"nothing was failed back: {len(missing)} VM(s) of the plan have no recovery point "
            f"(rule: {NO_POINT_RULE})\n" + "\n".join(missing)
        )


def choose_points(
    units: Iterable[UnitLike],
    points_by_vm: Mapping[str, Sequence[RecoveryPoint]],
    *,
    now: datetime,
    errors: dict[str, str] | None = None,
) -> dict[str, dict[str, Choice]]:
    """Choose points for every VM/group unit of a compiled plan (hook units are skipped).

    Returns ``{unit name: {vm: Choice}}``. By default one :class:`RecoveryPointError` lists every failing
    unit; pass a dict as ``errors`` to collect ``{unit name: message}`` there instead (for the dry run).
    """
    out: dict[str, dict[str, Choice]] = {}
    problems: dict[str, str] = {}
    for u in units:
        if u.kind == "hook" or u.policy is None:
            continue
        names = [v.name for v in u.vms]
        try:
            out[u.name] = choose_for_unit(
                u.policy,
                {vm: points_by_vm.get(vm, ()) for vm in names},
                now=now,
                max_data_loss=u.max_data_loss,
                unit=u.name if u.kind == "group" else None,
            )
        except RecoveryPointError as e:
            problems[u.name] = str(e)
    if errors is not None:
        errors.update(problems)
    elif problems:
        raise RecoveryPointError("\n".join(problems.values()))
    return out


# -- the decision made immediately before a unit's failback write ------------------------------------------
#: how a recovery point is sent to ASR: a point id, or a type ASR resolves itself (classic providers) ...
CUSTOM, LATEST_TAG, LATEST_TIME = "Custom", "LatestTag", "LatestTime"
#: ... or, on the modernized providers, a point type only (the point is made or picked when the job runs)
APP_CONSISTENT, CRASH_CONSISTENT = "ApplicationConsistent", "CrashConsistent"


@dataclass(frozen=True, slots=True)
class PointDecision:
    """What one unit fails back to, decided from a fresh read immediately before its write.

    ``choices`` are the points ASR will apply (for a point type, the points it resolves to at
    ``decided_at``: what the guard checks; ASR may pick a newer one when its job runs, never an older one);
    ``asr_type`` is how they are sent; ``by_recovery_plan``: as one ASR recovery plan for the group;
    ``pinned_to`` the point time a group resumed half-way is held to (its first members went there).
    """

    unit: str
    group: bool
    policy: RecoveryPointPolicy
    choices: Mapping[str, Choice]
    asr_type: str  # Custom | LatestTag | LatestTime | ApplicationConsistent | CrashConsistent
    decided_at: datetime
    max_data_loss: float | None = None
    pinned_to: datetime | None = None
    by_recovery_plan: bool = False
    read_at: datetime | None = None  # the points were read then (preflight), not at the decision

    @property
    def resolved_by_asr(self) -> bool:
        """ASR resolves the point from a type when its job runs (the choices are what it resolved to when
        the points were read)."""
        return self.asr_type != CUSTOM

    def age(self, vm: str) -> timedelta:
        """How old the VM's point is at the moment of the decision (what ``max_data_loss`` guards)."""
        return max(self.decided_at - self.choices[vm].point.time, _ZERO)

    def window(self, vm: str) -> timedelta:
        """How far the VM's point lies behind its newest point at the moment of the decision."""
        return self.choices[vm].data_loss

    def describe(self, vm: str) -> str:
        c = self.choices.get(vm)
        if c is None:  # nothing read: ASR makes the point when it shuts the Azure VM down
            return f"the point ASR makes when it shuts the Azure VM down ({self.asr_type}): its latest"
        kind = "app-consistent" if c.point.app_consistent else "crash-consistent"
        if self.read_at is not None:  # ASR takes its newest point of the type when the job runs
            which = "app-consistent point" if self.asr_type in (LATEST_TAG, APP_CONSISTENT) else "point"
            return (
                f"its newest {which} when ASR runs the failback ({self.asr_type}); when read at "
                f"{_fmt_time(self.read_at)}, {kind} point {_fmt_time(c.point.time)}"
            )
        return (
            f"{kind} point {_fmt_time(c.point.time)} ({self.asr_type}), "
            f"{format_duration(self.age(vm).total_seconds())} old, "
            f"{format_duration(self.window(vm).total_seconds())} behind newest"
        )


def decide(
    unit: UnitLike,
    points_by_vm: Mapping[str, Sequence[RecoveryPoint]],
    *,
    now: datetime,
    by_recovery_plan: bool = False,
    pinned_to: datetime | None = None,
    guard: bool = True,
    modernized: bool = False,
    read_at: datetime | None = None,
) -> PointDecision:
    """The point each VM of ``unit`` still to fail back goes to, at ``now``, and how it is sent to ASR.

    ``points_by_vm``: the unit's members still to fail back, each with its points as just read.
    ``by_recovery_plan``: the group fails back through an ASR recovery plan, which takes a point *type*
    (``LatestTag``: the group's newest common multi-VM sync point; ``LatestTime``: each member's newest);
    a policy that mode cannot honour is refused here, naming the setting that works. ``pinned_to``: members
    of this group already failed back to that point time; the others go to a point at exactly that time or
    not at all. ``guard``: check ``max_data_loss`` against each point's age at ``now`` (a drill measures
    instead). ``modernized``: the items fail back by planned failover, which takes a point type only
    (a group: its recovery plan, ``ApplicationConsistent`` with multi-VM sync — the common app-consistent
    point; a standalone VM: ``CrashConsistent`` for its own latest point, ``ApplicationConsistent`` for its
    newest app-consistent one). ``read_at``: the points were read then, before this decision (not just
    now): the point is then sent as a type ASR resolves when its job runs (``LatestTime``/``LatestTag``),
    never as a point id from an earlier read; ``None``: read just now. Raises :class:`RecoveryPointError`
    naming the group or VM and every member concerned.
    """
    if unit.policy is None:
        raise RecoveryPointError(f"{unit.name} is not a VM or a replication group")
    policy = RecoveryPointPolicy(unit.policy)
    group = unit.kind == "group"
    label = f"group {unit.name}" if group else f"VM {unit.name}"
    limit = unit.max_data_loss if guard else None
    if (by_recovery_plan or (modernized and group)) and policy is RecoveryPointPolicy.latest_app_consistent:
        raise RecoveryPointError(
            f"cannot fail back {label} by ASR recovery plan with recovery_point latest-app-consistent: "
            "a recovery plan applies the group's newest common multi-VM app-consistent point to every "
            "member; use recovery_point: common-app-consistent"
            + ("" if modernized else ", or failback_mode: per-item")
        )
    if modernized and pinned_to is not None and policy is not RecoveryPointPolicy.latest:
        raise RecoveryPointError(
            f"group {unit.name} is split: some members already failed back to {_fmt_time(pinned_to)}, and a "
            "modernized planned failover takes a point type, not that point: cancel their failback in ASR "
            "(Cancel failover, before any commit), then run again so the group fails back together"
        )
    if modernized:
        choices = choose_for_unit(
            policy, points_by_vm, now=now, unit=unit.name if group else None, sync_known=False
        )
        latest_only = policy is RecoveryPointPolicy.latest
        asr_type = CRASH_CONSISTENT if latest_only else APP_CONSISTENT
        by_recovery_plan = group
    elif pinned_to is not None and policy is not RecoveryPointPolicy.latest:
        choices = _pinned(unit.name, points_by_vm, pinned_to)
        asr_type = CUSTOM
        by_recovery_plan = False
    else:
        choices = choose_for_unit(policy, points_by_vm, now=now, unit=unit.name if group else None)
        if not by_recovery_plan and read_at is None:
            asr_type = CUSTOM
        else:
            asr_type = LATEST_TIME if policy is RecoveryPointPolicy.latest else LATEST_TAG
    if limit is not None:
        _guard(choices, now=now, limit=limit, unit=unit.name if group else None)
    return PointDecision(
        unit.name, group, policy, choices, asr_type, now, limit, pinned_to, by_recovery_plan, read_at
    )


def _pinned(
    group: str, points_by_vm: Mapping[str, Sequence[RecoveryPoint]], when: datetime
) -> dict[str, Choice]:
    """Each remaining member's point at exactly ``when``: the time the group's first members went to."""
    choices: dict[str, Choice] = {}
    missing: list[str] = []
    for vm, points in points_by_vm.items():
        at = [p for p in points if p.time == when]
        newest = _newest(points)
        if not at or newest is None:
            missing.append(
                f"  VM {vm}: no point at {_fmt_time(when)}; its newest point is "
                f"{_fmt_time(newest.time) if newest else 'none'}"
            )
            continue
        choices[vm] = _choice(
            vm,
            _newest_of(at),
            newest,
            RecoveryPointPolicy.common_app_consistent,
            f"group {group} resumed: the point time its other members already failed back to",
        )
    if missing:
        raise RecoveryPointError(
            "\n".join(
                [
                    f"cannot complete the failback of group {group} at one point: members already failed "
                    f"back to {_fmt_time(when)}, and these members have no point at that time:",
                    *missing,
                    "nothing was sent for them; a classic failback cannot be undone: fail them back by hand "
                    "to the nearest point, or accept mixed points with --recovery-point "
                    f"{group}=latest (the group then loses its consistency)",
                ]
            )
        )
    return choices
