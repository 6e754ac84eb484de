"""Cross-reference rules of a plan: names, groups, master targets, dependencies, secrets.

The schema (:mod:`drplan.plan.schema`) checks each field on its own; this module checks how the parts fit
together. Every rule reports a positioned :class:`Problem`, and all problems are returned at once.
:func:`drplan.plan.loader.load_plan` runs both and raises one :class:`~drplan.errors.PlanError`.
"""

from __future__ import annotations

import difflib
import weakref
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal, overload

import networkx as nx

from drplan.errors import PlanError
from drplan.plan.schema import (
    Hook,
    MasterTarget,
    OsFamily,
    Plan,
    RecoveryPointPolicy,
    ReplicationGroup,
    SecretRef,
    ShellHook,
    Vm,
)

MAX_GROUP_MEMBERS = 16  # ASR's limit for a multi-VM consistency group
# "did you mean" compares a word with every candidate (about 7 us each): past this many comparisons
# in one check, unknown names get no suggestion (2,000 typos among 2,000 VMs took 56 s)
SUGGESTION_BUDGET = 50_000

Path = tuple[str | int, ...]
# Maps a path inside the plan document to its 1-based (line, column); ``key=True`` asks for the
# position of the mapping key rather than its value. Returns None when the path is not in the document.
Locate = Callable[..., "tuple[int, int] | None"]


def format_path(path: Iterable[str | int]) -> str:
    """``("vms", 2, "depends_on", 0)`` -> ``vms[2].depends_on[0]``; a long key (an unknown one, from
    the document) is shortened."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        part = str(part) if len(str(part)) <= 60 else str(part)[:57] + "..."
        out += f".{part}" if out else part
    return out


class Problem(str):
    """One problem in a plan. It *is* its text, ``FILE:LINE:COL: path: message``; the parts stay
    available for machine output (``drplan validate --json``). Line and column are 1-based, or None
    when the plan did not come from a file."""

    file: str
    line: int | None
    col: int | None
    path: str
    message: str

    def __new__(cls, file: str, line: int | None, col: int | None, path: str, message: str) -> Problem:
        where = file if line is None else f"{file}:{line}:{col}"
        self = super().__new__(cls, f"{where}: {path}: {message}" if path else f"{where}: {message}")
        self.file, self.line, self.col, self.path, self.message = file, line, col, path, message
        return self

    # keep pickling (e.g. across processes) working; str's own takes only the text
    def __getnewargs__(self) -> tuple[str, int | None, int | None, str, str]:  # type: ignore[override]
        return (self.file, self.line, self.col, self.path, self.message)

    def to_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "col": self.col,
            "path": self.path,
            "message": self.message,
        }


def sort_problems(problems: Iterable[Problem]) -> list[Problem]:
    """Document order (line, column), duplicates removed; unpositioned problems keep their order."""
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda p: (p.line or 0, p.col or 0))


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate, or an empty string."""
    match = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


class Suggester:
    """:func:`did_you_mean` within a budget of comparisons, once per word and pool: a plan with
    thousands of misspelt names gets suggestions for the first ones and no quadratic wait."""

    def __init__(self, budget: int = SUGGESTION_BUDGET):
        self.budget = budget
        self._done: dict[tuple[object, str], str] = {}

    def __call__(self, word: object, candidates: Collection[str], pool: str) -> str:
        if not isinstance(word, str) or len(word) > 128:
            return ""
        if (word, pool) not in self._done:
            self.budget -= len(candidates)
            self._done[word, pool] = did_you_mean(word, candidates) if self.budget >= 0 else ""
        return self._done[word, pool]


@dataclass(frozen=True)
class Source:
    """Where a plan came from, so problems can carry FILE:LINE:COL."""

    file: str = "<plan>"
    locate: Locate | None = None

    def problem(self, path: Path, message: str, *, key: bool = False, at: Path | None = None) -> Problem:
        """A problem about ``path``, positioned at ``at`` (default: ``path`` itself), or at its
        nearest ancestor present in the document."""
        pos = None
        if self.locate:
            target = path if at is None else at
            pos = self.locate(target, key=key)
            while pos is None and target:
                target = target[:-1]
                pos = self.locate(target, key=True)
        line, col = pos if pos else (None, None)
        return Problem(self.file, line, col, format_path(path), message)

    def line_of(self, path: Path) -> int | None:
        pos = self.locate(path) if self.locate else None
        return pos[0] if pos else None


@dataclass
class Analysis:
    """What the rules worked out and the compiler reuses: unit graph (edge ``dep -> dependent``),
    the group of each member VM, and each group's member VMs."""

    graph: nx.DiGraph
    group_of: dict[str, str]
    members: dict[str, list[Vm]]
    edge_origin: dict[tuple[str, str], Path] = field(default_factory=dict)


@dataclass(frozen=True)
class Partial:
    """For a plan that failed the schema, the parts that did validate: original list indices of the
    items kept per section; names of the items that did not (references to them are not reported as
    unknown); sections that are unusable for "is it declared?" judgements (not a list, or an item
    without a readable name). Fields that did not validate are None in the kept items."""

    indices: Mapping[str, list[int]]
    broken_names: frozenset[str] = frozenset()
    broken_sections: frozenset[str] = frozenset()


Section = Literal["vms", "replication_groups", "hooks"]
_SECTIONS: tuple[Section, ...] = ("vms", "replication_groups", "hooks")
_KIND_WORD = {"vms": "VM", "replication_groups": "replication group", "hooks": "hook"}


class _Checker:
    def __init__(self, plan: Plan, source: Source, partial: Partial | None):
        self.plan, self.source, self.partial = plan, source, partial
        self.problems: list[Problem] = []
        self.broken = partial.broken_names if partial else frozenset()
        unusable = partial.broken_sections if partial else frozenset()
        self.refs_uncertain = bool(unusable & set(_SECTIONS))
        self.mts_uncertain = "master_targets" in unusable
        self.names: dict[str, Path] = {}  # first declaration of each VM/group/hook name -> path of its name
        self.kind: dict[str, str] = {}  # name -> "vms" | "replication_groups" | "hooks"
        self.vms: dict[str, Vm] = {}
        self.group_of: dict[str, str] = {}
        self.members: dict[str, list[Vm]] = {}
        self.graph = nx.DiGraph()
        self.edge_origin: dict[tuple[str, str], Path] = {}
        self.suggest = Suggester()

    # -- helpers ---------------------------------------------------------------------------
    def add(self, path: Path, message: str, *, key: bool = False) -> None:
        self.problems.append(self.source.problem(path, message, key=key))

    @overload
    def items(self, section: Literal["vms"]) -> Iterator[tuple[int, Vm]]: ...
    @overload
    def items(self, section: Literal["replication_groups"]) -> Iterator[tuple[int, ReplicationGroup]]: ...
    @overload
    def items(self, section: Literal["hooks"]) -> Iterator[tuple[int, Hook]]: ...
    @overload
    def items(self, section: Literal["master_targets"]) -> Iterator[tuple[int, MasterTarget]]: ...
    def items(self, section: str) -> Iterator[tuple[int, object]]:
        seq = getattr(self.plan, section)
        idx = self.partial.indices.get(section) if self.partial else None
        if idx is None:
            yield from enumerate(seq)
        else:
            yield from zip(idx, seq, strict=True)

    def where(self, path: Path) -> str:
        line = self.source.line_of(path)
        return format_path(path[:2]) + (f" (line {line})" if line else "")

    def unit_of(self, name: str) -> str:
        return self.group_of.get(name, name)

    # -- rules -----------------------------------------------------------------------------
    def run(self) -> list[Problem]:
        self.check_names()
        mts = self.check_master_targets()
        self.check_groups()
        self.check_vms(mts)
        self.check_dependencies()
        self.check_cycles()
        self.check_empty()
        self.check_defaults_and_secrets()
        return self.problems

    def check_names(self) -> None:
        vcenter_names: dict[str, Path] = {}
        for section in _SECTIONS:
            for idx, item in self.items(section):
                path = (section, idx, "name")
                first = self.names.get(item.name)
                if first is not None:
                    self.add(path, f"duplicate name {item.name!r}: already used by {self.where(first)}")
                    continue
                self.names[item.name] = path
                self.kind[item.name] = section
                if isinstance(item, Vm):  # the vms section
                    self.vms[item.name] = item
                    vc = item.vcenter_name or item.name
                    if vc in vcenter_names:
                        where = ("vms", idx, "vcenter_name" if item.vcenter_name else "name")
                        used_by = self.where(vcenter_names[vc])
                        self.add(where, f"vCenter VM {_short(vc)} is already used by {used_by}")
                    else:
                        vcenter_names[vc] = path

    def check_master_targets(self) -> dict[str, OsFamily] | None:
        mts: dict[str, OsFamily] = {}
        first: dict[str, Path] = {}
        for idx, mt in self.items("master_targets"):
            path = ("master_targets", idx, "name")
            if mt.name in mts:
                declared = self.where(first[mt.name])
                self.add(path, f"duplicate master target {mt.name!r}: already declared at {declared}")
            else:
                mts[mt.name], first[mt.name] = mt.os, path
        return None if self.mts_uncertain else mts

    def check_groups(self) -> None:
        for gi, group in self.items("replication_groups"):
            if self.names.get(group.name, ())[:2] != ("replication_groups", gi):
                continue  # a duplicate name, reported already
            base: Path = ("replication_groups", gi)
            listed_members = group.members or ()  # None: the list did not validate (in a partial plan)
            if len(listed_members) > MAX_GROUP_MEMBERS:
                self.add(
                    (*base, "members"),
                    f"replication group {group.name!r} has {len(listed_members)} members; "
                    f"ASR allows at most {MAX_GROUP_MEMBERS} VMs in a replication group",
                    key=True,
                )
            members: list[Vm] = []
            listed: set[str] = set()
            firsts: dict[str, Vm] = {}
            mixed: set[str] = set()
            for j, name in enumerate(listed_members):
                path = (*base, "members", j)
                if name in listed:
                    self.add(path, f"{name!r} is listed twice in members")
                    continue
                listed.add(name)
                kind = self.kind.get(name)
                if kind is None:
                    if name not in self.broken and not self.refs_uncertain:
                        self.add(path, f"unknown VM {name!r}{self.suggest(name, self.vms, 'vms')}")
                elif kind != "vms":
                    self.add(
                        path, f"{name!r} is a {_KIND_WORD[kind]}, not a VM; replication group members are VMs"
                    )
                elif name in self.group_of:
                    self.add(
                        path,
                        f"VM {name!r} is already a member of replication group {self.group_of[name]!r}; "
                        "a VM belongs to at most one replication group",
                    )
                else:
                    self.group_of[name] = group.name
                    members.append(self.vms[name])
                    self._check_member_consistency(group, self.vms[name], firsts, mixed, path)
            self.members[group.name] = members

    def _check_member_consistency(
        self, group: ReplicationGroup, vm: Vm, firsts: dict[str, Vm], mixed: set[str], path: Path
    ) -> None:
        """Report the first member that differs from the group's first member (``firsts`` and ``mixed``
        carry what the members before ``vm`` showed, so a group's check is linear)."""
        for attr in ("os", "master_target"):
            if getattr(vm, attr) is None or attr in mixed:
                continue
            first = firsts.setdefault(attr, vm)
            if getattr(vm, attr) == getattr(first, attr):
                continue
            mixed.add(attr)
            if attr == "os":
                self.add(
                    path,
                    f"replication group {group.name!r} mixes OS families: {first.name!r} is {first.os} "
                    f"but {vm.name!r} is {vm.os}; all members must share one OS family",
                )
            else:
                self.add(
                    path,
                    f"replication group {group.name!r} mixes master targets: {first.name!r} uses "
                    f"{first.master_target!r} but {vm.name!r} uses {vm.master_target!r}; "
                    "all members must use the same master target",
                )

    def check_vms(self, mts: dict[str, OsFamily] | None) -> None:
        for idx, vm in self.items("vms"):
            base: Path = ("vms", idx)
            if mts is not None and vm.master_target is not None and vm.master_target not in self.broken:
                mt_os = mts.get(vm.master_target)
                if mt_os is None:
                    hint = self.suggest(vm.master_target, mts, "master_targets")
                    self.add(
                        (*base, "master_target"),
                        f"unknown master target {vm.master_target!r}{hint}; declare it under master_targets",
                    )
                elif mt_os is not None and vm.os is not None and mt_os != vm.os:
                    self.add(
                        (*base, "master_target"),
                        f"a {vm.os} VM needs a {vm.os} master target; {vm.master_target!r} is {mt_os}",
                    )
            group = self.group_of.get(vm.name) if self.names.get(vm.name, ())[:2] == base else None
            if group is not None:
                for attr in ("recovery_point", "max_data_loss"):
                    if getattr(vm, attr) is not None:
                        self.add(
                            (*base, attr),
                            f"{vm.name!r} fails back with replication group {group!r}; "
                            f"set {attr} on the group instead",
                            key=True,
                        )
            elif vm.recovery_point == RecoveryPointPolicy.common_app_consistent:
                self.add((*base, "recovery_point"), _COMMON_ON_STANDALONE)
            if vm.verify is not None and vm.verify.timeout == 0:
                self.add((*base, "verify", "timeout"), "a timeout must be greater than 0")

    def check_dependencies(self) -> None:
        nodes = [name for name, path in self.names.items() if path[0] != "vms" or name not in self.group_of]
        edges: list[tuple[str, str]] = []
        for section in _SECTIONS:
            for idx, item in self.items(section):
                if not item.depends_on:
                    continue
                # a duplicate name: check its references, add no edges
                own = self.unit_of(item.name) if self.names.get(item.name, ())[:2] == (section, idx) else None
                seen: set[str] = set()
                for k, dep in enumerate(item.depends_on):
                    path = (section, idx, "depends_on", k)
                    if dep in seen:
                        self.add(path, f"{dep!r} is listed twice in depends_on")
                        continue
                    seen.add(dep)
                    if dep == item.name:
                        self.add(path, f"{dep!r} depends on itself")
                        continue
                    if dep not in self.names:
                        if dep not in self.broken and not self.refs_uncertain:
                            hint = self.suggest(dep, self.names, "names")
                            self.add(path, f"unknown VM, group or hook {dep!r}{hint}")
                        continue
                    target = self.unit_of(dep)
                    if own is None:
                        continue
                    if target == own:
                        if section == "replication_groups":
                            msg = f"{dep!r} is a member of this group; a group cannot depend on its members"
                        elif dep == own:
                            msg = f"{item.name!r} is a member of {own!r}; it cannot depend on its own group"
                        else:
                            msg = (
                                f"{dep!r} is in the same replication group {own!r}; "
                                "members fail back together and cannot depend on each other"
                            )
                        self.add(path, msg)
                        continue
                    edge = (target, own)
                    if edge not in self.edge_origin:
                        self.edge_origin[edge] = path
                        edges.append(edge)
        # sorted, so that ties in later algorithms do not depend on declaration order
        self.graph.add_nodes_from(sorted(nodes))
        self.graph.add_edges_from(sorted(edges))

    def check_cycles(self) -> None:
        if nx.is_directed_acyclic_graph(self.graph):
            return
        depends = self.graph.reverse(copy=False)  # edge a -> b reads "a depends on b"
        sccs = [c for c in nx.strongly_connected_components(depends) if len(c) > 1]
        for scc in sorted(sccs, key=min):
            edges = nx.find_cycle(depends.subgraph(scc), source=min(scc))
            nodes = [u for u, _ in edges]
            start = nodes.index(min(nodes))
            nodes = nodes[start:] + nodes[:start]
            origin = self.edge_origin[(nodes[1], nodes[0])]  # where nodes[0] names nodes[1]
            self.add(origin, "dependency cycle: " + " -> ".join([*nodes, nodes[0]]))

    def check_empty(self) -> None:
        if not self.plan.vms and not (self.partial and "vms" in self.partial.broken_sections):
            self.add(("vms",), "the plan has no VMs; list at least one under vms", key=True)

    def check_defaults_and_secrets(self) -> None:
        defaults = self.plan.defaults
        if defaults.recovery_point == RecoveryPointPolicy.common_app_consistent:
            self.add(("defaults", "recovery_point"), _COMMON_ON_STANDALONE)
        if defaults.boot_timeout == 0:
            self.add(("defaults", "boot_timeout"), "a timeout must be greater than 0")
        for idx, hook in self.items("hooks"):
            if isinstance(hook, ShellHook) and hook.timeout == 0:
                self.add(("hooks", idx, "timeout"), "a timeout must be greater than 0")
        if self.plan.vcenter is not None and isinstance(self.plan.vcenter.password, SecretRef):
            self._check_secret(("vcenter", "password"), self.plan.vcenter.password)

    def _check_secret(self, path: Path, ref: SecretRef) -> None:
        if ref.env is None and ref.prefect_secret is None:
            self.add(path, "a secret reference needs one of env or prefect_secret, e.g. {env: VAR}")
        elif ref.env is not None and ref.prefect_secret is not None:
            self.add(path, "a secret reference takes one of env or prefect_secret, not both")


def _short(text: str) -> str:
    """``repr`` of a string from the document that no schema rule bounds, shortened."""
    shown = repr(text)
    return shown if len(shown) <= 60 else shown[:56] + "...'"


_COMMON_ON_STANDALONE = (
    "common-app-consistent applies to replication groups; "
    "a standalone VM uses latest or latest-app-consistent"
)

_ANALYSES: dict[int, tuple[weakref.ref[Plan], Analysis]] = {}


def check_plan(plan: Plan, source: Source | None = None, partial: Partial | None = None) -> list[Problem]:
    """Every cross-reference problem of ``plan``, in document order. An empty list means valid;
    the analysis is then kept for :func:`drplan.plan.graph.compile_plan`."""
    checker = _Checker(plan, source or Source(), partial)
    problems = sort_problems(checker.run())
    if not problems and partial is None:
        _ANALYSES[id(plan)] = (
            weakref.ref(plan),
            Analysis(checker.graph, checker.group_of, checker.members, checker.edge_origin),
        )
        weakref.finalize(plan, _ANALYSES.pop, id(plan), None)
    return problems


def validate_plan(plan: Plan, source: Source | None = None) -> Analysis:
    """Check ``plan`` (once; the result is cached per plan object) and return its analysis.

    Raises PlanError with every problem when the plan is invalid."""
    entry = _ANALYSES.get(id(plan))
    if entry is not None and entry[0]() is plan:
        return entry[1]
    problems = check_plan(plan, source)
    if problems:
        raise PlanError([*problems])
    return _ANALYSES[id(plan)][1]
