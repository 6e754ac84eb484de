"""Load a plan from YAML, reporting every problem at once as ``FILE:LINE:COL: path: message``.

:mod:`drplan.plan.yamldoc` reads the file (libyaml, with bounded work) into dicts and lists that
remember the line and column of every key, value and item, so schema errors (pydantic) and
cross-reference problems (:mod:`drplan.plan.validate`) both point into the file. A 10,000-VM plan
loads in about a second. Nothing written where a secret belongs is echoed.
"""

from __future__ import annotations

import functools
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path as FsPath

import pydantic
from pydantic import BaseModel, TypeAdapter

from drplan.errors import PlanError
from drplan.plan.schema import (
    ApprovalHook,
    Defaults,
    MasterTarget,
    Name,
    Plan,
    ReplicationGroup,
    SecretRef,
    ShellHook,
    VCenterTarget,
    Vm,
    WaitHook,
)
from drplan.plan.validate import Partial, Path, Problem, Source, check_plan, did_you_mean, sort_problems
from drplan.plan.yamldoc import YamlMap, YamlProblem, YamlSeq, gc_paused, read_document, show

__all__ = ["gc_paused", "load_plan", "load_plan_text"]

LITERAL_SECRET = "a literal secret is not allowed here; reference it: {env: VAR} or {prefect_secret: BLOCK}"


def load_plan(path: str | FsPath) -> Plan:
    """Read, parse and validate a plan file. Raises PlanError listing every problem."""
    name = str(path)
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
        what = "the plan is empty" if data is None else f"the plan is a {_type_word(data)}"
        expected = "expected a mapping with name, azure, vcenter and vms"
        raise PlanError([Problem(filename, 1, 1, "", f"{what}; {expected}")])
    try:
        plan = Plan.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = [_schema_problem(err, data, source) for err in exc.errors(include_url=False)]
        partial_plan, partial = _partial_plan(data)
        problems += check_plan(partial_plan, source, partial)
        raise PlanError(sort_problems(problems)) from None
    problems = check_plan(plan, source)
    if problems:
        raise PlanError(problems)
    return plan


def _secret_keys(model: type[BaseModel], seen: set[type] | None = None) -> frozenset[str]:
    """Names of the fields, anywhere in ``model``, that hold a :class:`SecretRef`."""
    seen = set() if seen is None else seen
    seen.add(model)
    keys: set[str] = set()
    for name, info in model.model_fields.items():
        for tp in _types_in(info.annotation):
            if tp is SecretRef:
                keys.add(name)
            elif isinstance(tp, type) and issubclass(tp, BaseModel) and tp not in seen:
                keys |= _secret_keys(tp, seen)
    return frozenset(keys)


def _types_in(tp: object) -> list[object]:
    args = typing.get_args(tp)
    return [tp] if not args else [t for arg in args for t in _types_in(arg)]


SECRET_KEYS = _secret_keys(Plan)  # {"password"}: nothing under such a key is echoed


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
            elif isinstance(node, YamlSeq) and isinstance(part, int) and 0 <= part < len(node):
                pos = node.marks[part]
            else:
                return None
            node = node[part]
        return pos[0] + 1, pos[1] + 1


# -- schema errors ---------------------------------------------------------------------------------


def _unwrap(tp: object) -> object:
    """Strip Annotated and Optional from a type annotation."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _resolve(loc: tuple) -> tuple[Path, type | None]:
    """Turn a pydantic error location into a document path (dropping union tags like ``shell``)
    plus the model class at that path (None below a scalar)."""
    path: list[str | int] = []
    tp: object = Plan
    for part in loc:
        tp = _unwrap(tp)
        if typing.get_origin(tp) in (typing.Union, types.UnionType):  # the Hook union: part is its tag
            by_tag = {_tag(m): m for m in typing.get_args(tp) if isinstance(m, type)}
            if part in by_tag:
                tp = by_tag[part]
                continue
            tp = None
        if isinstance(tp, type) and issubclass(tp, BaseModel) and isinstance(part, str):
            field = tp.model_fields.get(part)
            tp = field.annotation if field else None
        elif typing.get_origin(tp) is tuple and isinstance(part, int):
            tp = typing.get_args(tp)[0]
        else:
            tp = None
        path.append(part)
    tp = _unwrap(tp)
    return tuple(path), tp if isinstance(tp, type) else None


def _tag(model: type) -> str | None:
    field = model.model_fields.get("kind")
    args = typing.get_args(field.annotation) if field else ()
    return args[0] if args else None


def _node_at(data: object, path: Path) -> object:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _type_word(value: object) -> str:
    if isinstance(value, Mapping):
        return "mapping"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, Sequence):
        return "list"
    return "null" if value is None else type(value).__name__


def _show(value: object) -> str | None:
    """A scalar as it may appear in a message (shortened); None for a mapping or a list."""
    if isinstance(value, Mapping | list | tuple):
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        text = repr(value)
        return text if len(text) <= 60 else text[:56] + "..."
    return show(value)


def _hint(value: object, choices: Sequence[str]) -> str:
    return did_you_mean(value, choices) if isinstance(value, str) and len(value) <= 128 else ""


def _choices(expected: str) -> list[str]:
    return re.findall(r"'([^']*)'", expected)


def _schema_problem(err: dict, data: object, source: Source) -> Problem:
    path, model = _resolve(err["loc"])
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    if kind == "missing":
        return source.problem(path, "required field is missing", key=True, at=path[:-1])
    if kind == "extra_forbidden":
        parent = _resolve(err["loc"][:-1])[1]  # the original location keeps the hook's tag
        allowed = list(parent.model_fields) if parent else []
        hint = _hint(path[-1], allowed)
        if not hint and allowed:
            hint = "; allowed: " + ", ".join(allowed)
        if parent is SecretRef:  # the key may be the secret itself: name neither it nor its path
            return source.problem(path[:-1], f"unknown field in a secret reference (not shown){hint}")
        return source.problem(path, f"unknown field {show(path[-1])}{hint}", key=True)
    if model is SecretRef and not isinstance(value, Mapping):
        return source.problem(path, LITERAL_SECRET)
    if kind in ("enum", "literal_error"):
        expected = " or ".join(repr(c) for c in _choices(ctx.get("expected", "")))
        shown = _show(value)
        if shown is None:
            return source.problem(path, f"expected {expected}, got a {_type_word(value)}")
        message = f"invalid value {shown}: expected {expected}"
        return source.problem(path, message + _hint(value, _choices(ctx.get("expected", ""))))
    if kind == "union_tag_invalid":
        choices = _choices(ctx.get("expected_tags", ""))
        tag = ctx.get("tag")
        message = f"unknown hook kind {show(tag)}: expected " + ", ".join(map(repr, choices))
        return source.problem((*path, "kind"), message + _hint(tag, choices))
    if kind == "union_tag_not_found":
        return source.problem(path, "a hook needs a kind: 'shell', 'approval' or 'wait'")
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return source.problem(path, f"expected a mapping, got a {_type_word(value)}")
    if kind in ("tuple_type", "list_type"):
        return source.problem(path, f"expected a list, got a {_type_word(value)}")
    if kind == "string_type":
        return source.problem(path, f"expected a string, got a {_type_word(value)}")
    if kind == "string_pattern_mismatch":
        return source.problem(
            path,
            f"invalid name {show(value)}: use letters, digits, '.', '_' and '-', "
            "starting with a letter or digit",
        )
    if kind == "string_too_short":
        return source.problem(path, "must not be empty")
    if kind == "too_short" and path and path[-1] == "members":
        return source.problem(path, "a replication group needs at least one member")
    if kind == "value_error":
        return source.problem(path, str(ctx.get("error", err["msg"])))
    return source.problem(path, err["msg"][0].lower() + err["msg"][1:])


# -- partial plan for cross-reference checks when the schema failed ------------------------------------

_NAME = TypeAdapter(Name)
_HOOK_CLASSES = {_tag(cls): cls for cls in (ShellHook, ApprovalHook, WaitHook)}
_SECTION_MODELS = {
    "vms": Vm,
    "replication_groups": ReplicationGroup,
    "hooks": None,
    "master_targets": MasterTarget,
}


@functools.cache
def _field_adapter(model: type[BaseModel], name: str) -> TypeAdapter:
    info = model.model_fields[name]
    return TypeAdapter(typing.Annotated[info.annotation, info])


class _Salvage:
    """Builds the parts of an invalid document that do validate, field by field."""

    def __init__(self) -> None:
        self.broken_names: set[str] = set()

    def item(self, model: type[BaseModel] | None, raw: object, *, named: bool = True) -> BaseModel | None:
        if not isinstance(raw, Mapping):
            return None
        if model is None:  # a hook: its class follows its kind
            kind = raw.get("kind")
            model = _HOOK_CLASSES.get(kind) if isinstance(kind, str) else None
            if model is None:
                if isinstance(raw.get("name"), str):
                    self.broken_names.add(raw["name"])
                return None
        values: dict[str, object] = {}
        for name, info in model.model_fields.items():
            if name not in raw:
                if info.is_required():
                    values[name] = None
                continue
            try:
                values[name] = _field_adapter(model, name).validate_python(raw[name])
            except pydantic.ValidationError:
                values[name] = self.names(raw[name]) if name in ("depends_on", "members") else None
                if values[name] is None and not info.is_required():
                    del values[name]  # the default
        if named and not isinstance(values.get("name"), str):
            if isinstance(raw.get("name"), str):
                self.broken_names.add(raw["name"])
            return None
        if model is MasterTarget and values.get("os") is None:  # declared, but its OS is unknown:
            self.broken_names.add(values["name"])  # no "unknown master target" for the VMs using it
        return model.model_construct(**values)

    def names(self, raw: object) -> tuple[str, ...] | None:
        """A list of names with some invalid entries: keep the positions, ignore the invalid ones
        (a mapping or a list stands in as a placeholder that names nothing)."""
        if not isinstance(raw, list):
            return None
        out = []
        for i, entry in enumerate(raw):
            try:
                out.append(_NAME.validate_python(entry))
            except pydantic.ValidationError:
                name = str(entry) if isinstance(entry, str | int | float) else ""
                name = name if 0 < len(name) <= 128 else f"<entry {i}>"
                out.append(name)
                self.broken_names.add(name)
        return tuple(out)


def _partial_plan(data: Mapping) -> tuple[Plan, Partial]:
    """The items that do validate, so cross-reference rules still report alongside schema errors."""
    salvage = _Salvage()
    fields: dict[str, object] = {}
    indices: dict[str, list[int]] = {}
    unusable: set[str] = set()
    for section, model in _SECTION_MODELS.items():
        raw = data.get(section)
        if raw is None:
            raw = []
        if not isinstance(raw, list):
            unusable.add(section)
            raw = []
        kept, idx = [], []
        for i, entry in enumerate(raw):
            item = salvage.item(model, entry)
            if item is None:
                if not (isinstance(entry, Mapping) and isinstance(entry.get("name"), str)):
                    unusable.add(section)  # an unnamed item: any reference might have meant it
            else:
                kept.append(item)
                idx.append(i)
        fields[section], indices[section] = tuple(kept), idx
    fields["defaults"] = salvage.item(Defaults, data.get("defaults"), named=False) or Defaults()
    fields["vcenter"] = salvage.item(VCenterTarget, data.get("vcenter"), named=False)
    plan = Plan.model_construct(**fields)
    return plan, Partial(indices, frozenset(salvage.broken_names), frozenset(unusable))
