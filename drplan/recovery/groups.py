"""Replication groups mean what ASR means: a plan group is exactly one ASR multi-VM group. Pure checks.

ASR keeps a multi-VM group's members at common multi-VM sync points (``multiVmGroupName`` on each item). A
plan group that holds only part of an ASR group, or members of two, would fail back to points that are not
common to the ASR group: preflight refuses it before any write, naming both memberships.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from drplan.observed import CheckResult

RULE = "a replication group of the plan is exactly one ASR multi-VM group"


def group_membership_checks(
    plan_groups: Mapping[str, Sequence[str]],
    standalone: Iterable[str],
    asr_group_of: Mapping[str, str | None],
) -> list[CheckResult]:
    """One failed check per plan group (or standalone VM) whose membership differs from ASR's.

    ``asr_group_of``: every protected item of the vault by VM name → its multi-VM group name (or ``None``).
    """
    asr_members: dict[str, set[str]] = {}
    for vm, group in asr_group_of.items():
        if group:
            asr_members.setdefault(group, set()).add(vm)
    out: list[CheckResult] = []
    for name, members in plan_groups.items():
        groups = sorted({g for m in members if (g := asr_group_of.get(m))})
        loose = sorted(m for m in members if m in asr_group_of and not asr_group_of.get(m))
        problem = ""
        if len(groups) > 1:
            problem = f"it spans ASR multi-VM groups {_listing(groups, asr_members)}"
        elif groups and set(members) != asr_members[groups[0]]:
            problem = f"ASR multi-VM group {_listing(groups, asr_members)} holds other members"
        elif loose and len(members) > 1:
            problem = f"VM(s) {', '.join(loose)} are in no ASR multi-VM group"
        if problem:
            out.append(
                CheckResult(
                    f"replication-group {name}",
                    False,
                    f"replication group {name} ({', '.join(sorted(members))}) is not what ASR fails over "
                    f"together: {problem}; make the plan group the ASR group's members, or change the ASR "
                    "multi-VM group (ASR keeps common points only across its own group)",
                    name,
                    RULE,
                )
            )
    for vm in sorted(standalone):
        group = asr_group_of.get(vm)
        if group and len(asr_members.get(group, ())) > 1:
            out.append(
                CheckResult(
                    f"replication-group {vm}",
                    False,
                    f"VM {vm} is standalone in the plan but in ASR multi-VM group "
                    f"{_listing([group], asr_members)}: fail it back with its group (a replication group of "
                    "the plan with the same members)",
                    vm,
                    RULE,
                )
            )
    return out


def _listing(groups: Sequence[str], members: Mapping[str, set[str]]) -> str:
    return ", ".join(f"{g} ({', '.join(sorted(members.get(g, ())))})" for g in groups)
