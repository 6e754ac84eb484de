"""Pydantic's errors for a plan document as positioned problems, and the partial plan the
cross-reference rules check when the schema failed.

No message stringifies a list or a mapping from the document (nine levels of aliases make one of
10^9 nodes), echoes a key written inside a secret reference, or compares more than a bounded
number of names for "did you mean".
"""

from __future__ import annotations

import functools
import re
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

import pydantic
from pydantic import BaseModel, TypeAdapter
from pydantic_core import ErrorDetails

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
from drplan.plan.validate import Partial, Path, Problem, Source, Suggester
from drplan.plan.yamldoc import show

Loc = tuple[int | str, ...]  # a pydantic error location

LITERAL_SECRET = "a literal secret is not allowed here; reference it: {env: VAR} or {prefect_secret: BLOCK}"


def secret_keys(model: type[BaseModel] = Plan, seen: set[type] | None = None) -> frozenset[str]:
    """Names of the fields, anywhere in ``model``, that hold a :class:`SecretRef`."""
    seen = set() if seen is None else seen
    seen.add(model)
    keys: set[str] = set()
    for name, info in model.model_fields.items():
        for tp in _types_in(info.annotation):
            if tp is SecretRef:
                keys.add(name)
            elif isinstance(tp, type) and issubclass(tp, BaseModel) and tp not in seen:
                keys |= secret_keys(tp, seen)
    return frozenset(keys)


def _types_in(tp: object) -> list[object]:
    args = typing.get_args(tp)
    return [tp] if not args else [t for arg in args for t in _types_in(arg)]


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


def type_word(value: object) -> str:
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


def _choices(expected: str) -> list[str]:
    return re.findall(r"'([^']*)'", expected)


class SchemaProblems:
    """Turns pydantic errors into problems positioned by ``source``. Error locations are resolved
    once per prefix, so a plan with 10^5 errors costs one step per error."""

    def __init__(self, source: Source):
        self.source = source
        self.suggest = Suggester()
        self._walked: dict[Loc, tuple[Path, object]] = {(): ((), Plan)}
        self._resolved: dict[Loc, tuple[Path, type[BaseModel] | None]] = {}
        self._allowed: dict[type[BaseModel] | None, tuple[list[str], str]] = {}

    def resolve(self, loc: Loc) -> tuple[Path, type[BaseModel] | None]:
        """A pydantic error location as a document path (dropping union tags like ``shell``) plus
        the model class at that path (None below a scalar)."""
        if loc not in self._resolved:
            path, tp = self._walk(loc)
            tp = _unwrap(tp)
            self._resolved[loc] = path, tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None
        return self._resolved[loc]

    def _walk(self, loc: Loc) -> tuple[Path, object]:
        if loc in self._walked:
            return self._walked[loc]
        path, tp = self._walk(loc[:-1])
        part = loc[-1]
        tp = _unwrap(tp)
        if tp is SecretRef and part not in SecretRef.model_fields:  # a key that may be the secret itself
            self._walked[loc] = path, None
            return self._walked[loc]
        if typing.get_origin(tp) in (typing.Union, types.UnionType):  # the Hook union: part is its tag
            by_tag = {
                _tag(m): m for m in typing.get_args(tp) if isinstance(m, type) and issubclass(m, BaseModel)
            }
            if part in by_tag:
                self._walked[loc] = path, by_tag[part]
                return self._walked[loc]
            tp = None
        if isinstance(tp, type) and issubclass(tp, BaseModel) and isinstance(part, str):
            field = tp.model_fields.get(part)
            tp = field.annotation if field else None
        elif typing.get_origin(tp) is tuple and isinstance(part, int):
            tp = typing.get_args(tp)[0]
        else:
            tp = None
        self._walked[loc] = (*path, part), tp
        return self._walked[loc]

    def problem(self, err: ErrorDetails) -> Problem:
        """The positioned problem for one pydantic error."""
        source, suggest = self.source, self.suggest
        kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
        if kind == "extra_forbidden":  # the parent's location keeps the hook's tag
            parent_path, parent = self.resolve(err["loc"][:-1])
            path = (*parent_path, err["loc"][-1])
            if parent not in self._allowed:
                allowed = list(parent.model_fields) if parent else []
                self._allowed[parent] = allowed, "; allowed: " + ", ".join(allowed) if allowed else ""
            allowed, listed = self._allowed[parent]
            hint = suggest(path[-1], allowed, parent.__name__ if parent else "") or listed
            if parent is SecretRef:  # the key may be the secret itself: name neither it nor its path
                return source.problem(path[:-1], f"unknown field in a secret reference (not shown){hint}")
            return source.problem(path, f"unknown field {show(path[-1])}{hint}", key=True)
        path, model = self.resolve(err["loc"])
        if kind == "missing":
            return source.problem(path, "required field is missing", key=True, at=path[:-1])
        if model is SecretRef and not isinstance(value, Mapping):
            return source.problem(path, LITERAL_SECRET)
        if kind in ("enum", "literal_error"):
            expected = " or ".join(repr(c) for c in _choices(ctx.get("expected", "")))
            shown = _show(value)
            if shown is None:
                return source.problem(path, f"expected {expected}, got a {type_word(value)}")
            message = f"invalid value {shown}: expected {expected}"
            return source.problem(
                path, message + suggest(value, _choices(ctx.get("expected", "")), "choices")
            )
        if kind == "union_tag_invalid":
            choices = _choices(ctx.get("expected_tags", ""))
            tag = ctx.get("tag")
            message = f"unknown hook kind {show(tag)}: expected " + ", ".join(map(repr, choices))
            return source.problem((*path, "kind"), message + suggest(tag, choices, "kinds"))
        if kind == "union_tag_not_found":
            return source.problem(path, "a hook needs a kind: 'shell', 'approval' or 'wait'")
        if kind in ("model_type", "dict_type", "model_attributes_type"):
            return source.problem(path, f"expected a mapping, got a {type_word(value)}")
        if kind in ("tuple_type", "list_type"):
            return source.problem(path, f"expected a list, got a {type_word(value)}")
        if kind == "string_type":
            return source.problem(path, f"expected a string, got a {type_word(value)}")
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


def _tag(model: type[BaseModel]) -> str | None:
    field = model.model_fields.get("kind")
    args = typing.get_args(field.annotation) if field else ()
    return args[0] if args else None


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
def _field_adapter(model: type[BaseModel], name: str) -> TypeAdapter[object]:
    info = model.model_fields[name]
    # the field's own type and constraints, built at run time (no static type form)
    return TypeAdapter(typing.Annotated[info.annotation, info])  # type: ignore[arg-type]


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
        values: dict[str, Any] = {}  # field values of differing types, passed on as keyword arguments
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


def partial_plan(data: Mapping[str, object]) -> tuple[Plan, Partial]:
    """The items that do validate, so cross-reference rules still report alongside schema errors."""
    salvage = _Salvage()
    fields: dict[str, Any] = {}  # field values of differing types, passed on as keyword arguments
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
