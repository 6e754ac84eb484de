"""Load a plan from YAML, reporting every problem at once as ``FILE:LINE:COL: path: message``.

:mod:`drplan.plan.yamldoc` reads the file (libyaml, with bounded work) into dicts and lists that
remember the line and column of every key, value and item, so schema errors (pydantic) and
cross-reference problems (:mod:`drplan.plan.validate`) both point into the file. A 10,000-VM plan
loads in about a second. Nothing written where a secret belongs is echoed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path as FsPath

import pydantic

from drplan.errors import PlanError
from drplan.plan.schema import Plan
from drplan.plan.schema_errors import SchemaProblems, partial_plan, secret_keys, type_word
from drplan.plan.validate import Path, Problem, Source, check_plan, sort_problems
from drplan.plan.yamldoc import YamlMap, YamlProblem, YamlSeq, gc_paused, read_document

__all__ = ["gc_paused", "load_plan", "load_plan_text"]


def load_plan(path: str | FsPath) -> Plan:
    """Read, parse and validate a plan file. Raises PlanError listing every problem."""
    name = str(path)
    reason: str | None
    try:
        text = FsPath(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        reason = "no such file"
    except IsADirectoryError:
        reason = "it is a directory"
    except UnicodeDecodeError as exc:
        reason = f"not UTF-8 text ({exc.reason})"
    except OSError as exc:
        reason = exc.strerror or str(exc)
    else:
        reason = None
    if reason is not None:
        raise PlanError([Problem(name, None, None, "", f"cannot read the plan: {reason}")])
    return load_plan_text(text, name)


def load_plan_text(text: str, filename: str = "<string>") -> Plan:
    """Parse and validate plan YAML ``text``; ``filename`` is used in problem positions."""
    with gc_paused():
        return _load(text, filename)


def _load(text: str, filename: str) -> Plan:
    data = _parse_yaml(text, filename)
    source = Source(filename, _Locator(data))
    if not isinstance(data, Mapping):
        what = "the plan is empty" if data is None else f"the plan is a {type_word(data)}"
        expected = "expected a mapping with name, azure, vcenter and vms"
        raise PlanError([Problem(filename, 1, 1, "", f"{what}; {expected}")])
    try:
        plan = Plan.model_validate(data)
    except pydantic.ValidationError as exc:
        translate = SchemaProblems(source)
        problems = [translate.problem(err) for err in exc.errors(include_url=False)]
        salvaged, partial = partial_plan(data)
        problems += check_plan(salvaged, source, partial)
        raise PlanError([*sort_problems(problems)]) from None
    problems = check_plan(plan, source)
    if problems:
        raise PlanError([*problems])
    return plan


SECRET_KEYS = secret_keys()  # {"password"}: nothing under such a key is echoed


# -- YAML -----------------------------------------------------------------------------------------


def _parse_yaml(text: str, filename: str) -> object:
    try:
        return read_document(text, SECRET_KEYS)
    except YamlProblem as exc:
        raise PlanError([Problem(filename, exc.line, exc.col, "", exc.message)]) from None


class _Locator:
    """Maps a plan path to the 1-based (line, column) of its node in the YAML document."""

    def __init__(self, root: object):
        self.root = root

    def __call__(self, path: Path, *, key: bool = False) -> tuple[int, int] | None:
        node = self.root
        pos = node.mark if isinstance(node, YamlMap | YamlSeq) else (0, 0)
        for i, part in enumerate(path):
            if isinstance(node, YamlMap) and isinstance(part, str) and part in node.marks:
                marks = node.marks[part]  # merged keys (<<: *x) carry no marks
                pos = marks[:2] if key and i == len(path) - 1 else marks[2:]
                node = node[part]
            elif isinstance(node, YamlSeq) and isinstance(part, int) and 0 <= part < len(node):
                pos = node.marks[part]
                node = node[part]
            else:
                return None
        return pos[0] + 1, pos[1] + 1
