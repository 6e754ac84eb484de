"""Load a plan from YAML, reporting every problem at once as ``FILE:LINE:COL: path: message``.

libyaml (PyYAML's C parser) reads the file; the document is built from its events with the line
and column of every key, value and item, so schema errors (pydantic) and cross-reference problems
(:mod:`drplan.plan.validate`) both point into the file. A 10,000-VM plan loads in about a second.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import re
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path as FsPath

import pydantic
import yaml
from pydantic import BaseModel, TypeAdapter
from yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)

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


# -- YAML -----------------------------------------------------------------------------------------
# libyaml (PyYAML's C parser) produces the events; _build turns them into dicts and lists that
# remember where each key, value and item starts, resolving scalars by the YAML 1.2 core schema
# (``no`` and ``on`` stay strings). Positions are 0-based (line, column) like the parser's marks.


class _Map(dict):
    """A YAML mapping; ``marks[key]`` is (key line, key column, value line, value column)."""

    __slots__ = ("mark", "marks")


class _Seq(list):
    """A YAML sequence; ``marks[i]`` is the (line, column) of item ``i``."""

    __slots__ = ("mark", "marks")


class _DocumentError(Exception):
    """A problem found while building the document (after the syntax was fine)."""

    def __init__(self, message: str, mark: tuple[int, int]):
        super().__init__(message)
        self.mark = mark


_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # PyYAML built without libyaml: slow
_MERGE = object()  # a pending ``<<`` key
_NO_KEY = object()
_CORE = "tag:yaml.org,2002:"
_FLOAT = re.compile(
    r"""[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |[-+]?\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN)""",
    re.X,
)
_INT = re.compile(r"[-+]?0b[0-1_]+|[-+]?0o?[0-7_]+|[-+]?[0-9_]+|[-+]?0x[0-9a-fA-F_]+")
_TIMESTAMP = yaml.constructor.SafeConstructor.timestamp_regexp
_WORDS = {  # plain scalars that are not strings
    **dict.fromkeys(("true", "True", "TRUE"), True),
    **dict.fromkeys(("false", "False", "FALSE"), False),
    **dict.fromkeys(("", "~", "null", "Null", "NULL")),
}
_BOOLS = {  # what an explicit !!bool tag accepts
    "true": True,
    "yes": True,
    "y": True,
    "on": True,
    "false": False,
    "no": False,
    "n": False,
    "off": False,
}


def _to_int(text: str) -> int:
    digits = text.replace("_", "")
    sign = -1 if digits[0] == "-" else 1
    digits = digits.lstrip("+-")
    base = {"0b": 2, "0o": 8, "0x": 16}.get(digits[:2])
    return sign * (int(digits[2:], base) if base else int(digits))


def _to_float(text: str) -> float:
    digits = text.replace("_", "").lower()
    if digits.endswith(("inf", "nan")):
        digits = digits.replace(".", "")
    return float(digits)


def _to_timestamp(text: str) -> object:
    node = yaml.ScalarNode(_CORE + "timestamp", text)
    return yaml.constructor.SafeConstructor().construct_yaml_timestamp(node)


_BY_TAG = {
    "str": str,
    "int": _to_int,
    "float": _to_float,
    "timestamp": _to_timestamp,
    "bool": lambda text: _BOOLS[text.lower()],
    "null": lambda text: None,
}


def _plain(text: str) -> object:
    """An untagged plain scalar, resolved by the YAML 1.2 core schema."""
    if text in _WORDS:
        return _WORDS[text]
    if text[0] in "0123456789-+.":
        if _FLOAT.fullmatch(text):
            return _to_float(text)
        if _INT.fullmatch(text):
            return _to_int(text)
        if _TIMESTAMP.fullmatch(text):
            return _to_timestamp(text)
    return text


def _scalar(event: ScalarEvent) -> object:
    tag = event.tag
    if tag is None or tag == "!":
        return _plain(event.value) if event.implicit[0] else event.value
    convert = _BY_TAG.get(tag[len(_CORE) :]) if tag.startswith(_CORE) else None
    if convert is None:
        raise _DocumentError(f"tag {tag!r} is not supported", _mark(event))
    try:
        return convert(event.value)
    except (ValueError, KeyError):
        raise _DocumentError(f"{event.value!r} is not a valid {tag[len(_CORE) :]}", _mark(event)) from None


def _mark(event: yaml.events.Event) -> tuple[int, int]:
    return event.start_mark.line, event.start_mark.column


def _build(parser: yaml.SafeLoader) -> object:
    """The single document of ``parser``'s event stream as _Map/_Seq/scalars. A duplicate key is
    reported only once the whole stream parsed, so a syntax error anywhere takes precedence."""
    get_event = parser.get_event
    stack: list[list] = []  # open collections: [collection, pending key or _NO_KEY, key mark, merges]
    anchors: dict[str, tuple[object, tuple[int, int]]] = {}
    root: object = None
    first_document: tuple[int, int] | None = None
    duplicate: _DocumentError | None = None
    while True:
        event = get_event()
        kind = type(event)
        if kind is ScalarEvent:
            value, mark = _scalar(event), (event.start_mark.line, event.start_mark.column)
        elif kind is MappingStartEvent or kind is SequenceStartEvent:
            if event.tag not in (None, "!", _CORE + ("map" if kind is MappingStartEvent else "seq")):
                raise _DocumentError(f"tag {event.tag!r} is not supported", _mark(event))
            value, mark = (_Map() if kind is MappingStartEvent else _Seq()), _mark(event)
            value.mark, value.marks = mark, ({} if kind is MappingStartEvent else [])
        elif kind is MappingEndEvent or kind is SequenceEndEvent:
            frame = stack.pop()
            for merged in frame[3] or ():
                for key, item in merged.items():
                    frame[0].setdefault(key, item)
            continue
        elif kind is AliasEvent:
            if event.anchor not in anchors:
                raise _DocumentError(f"found undefined alias {event.anchor!r}", _mark(event))
            value, mark = anchors[event.anchor]
        elif kind is DocumentStartEvent:
            if first_document is not None:
                raise _DocumentError(
                    "but found another document (expected a single document in the stream "
                    f"started at line {first_document[0] + 1})",
                    _mark(event),
                )
            first_document = _mark(event)
            continue
        elif kind is StreamEndEvent:
            if duplicate:
                raise duplicate
            return root
        else:  # stream start, document end
            continue
        if kind is not AliasEvent and event.anchor is not None:
            anchors[event.anchor] = value, mark
        if not stack:
            root = value
        else:
            frame = stack[-1]
            parent = frame[0]
            if type(parent) is _Seq:
                parent.append(value)
                parent.marks.append(mark)
            elif frame[1] is _NO_KEY:  # a key
                if type(value) is _Map or type(value) is _Seq:
                    raise _DocumentError("a mapping key must be a scalar", mark)
                if value == "<<" and kind is ScalarEvent and event.tag is None and event.implicit[0]:
                    value = _MERGE
                elif value in parent.marks and duplicate is None:
                    duplicate = _DocumentError(f"duplicate key {str(value)!r}", mark)
                frame[1], frame[2] = value, mark
            elif frame[1] is _MERGE:
                if type(value) is _Map:
                    merges = [value]
                elif type(value) is _Seq and all(type(v) is _Map for v in value):
                    merges = value
                else:
                    raise _DocumentError("a merge key (<<) takes a mapping or a list of mappings", mark)
                frame[3] = (frame[3] or []) + merges
                frame[1] = _NO_KEY
            else:
                parent[frame[1]] = value
                parent.marks[frame[1]] = frame[2] + mark
                frame[1] = _NO_KEY
        if kind is MappingStartEvent or kind is SequenceStartEvent:
            stack.append([value, _NO_KEY, None, None])


@contextlib.contextmanager
def gc_paused():
    """Pause the cyclic garbage collector. Loading or compiling a large plan allocates 10^5
    containers that all stay alive; the collector would rescan them again and again, finding
    nothing (for 10,000 VMs that costs more than the parse itself)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _read(loader_class: type, text: str) -> object:
    loader = loader_class(text)
    try:
        return _build(loader)
    finally:
        loader.dispose()


def _parse_yaml(text: str, filename: str) -> object:
    try:
        try:
            return _read(_FAST_LOADER, text)
        except yaml.YAMLError:  # a syntax error: libyaml words it tersely, so ask the slower
            return _read(yaml.SafeLoader, text)  # pure-Python parser, which explains it
    except _DocumentError as exc:
        line, col = exc.mark
        raise PlanError([Problem(filename, line + 1, col + 1, "", f"invalid YAML: {exc}")]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise PlanError([Problem(filename, line, col, "", _yaml_message(exc))]) from None
    except yaml.reader.ReaderError as exc:  # a control character
        line = text.count("\n", 0, exc.position) + 1
        col = exc.position - text.rfind("\n", 0, exc.position)
        message = f"invalid YAML: unacceptable character #x{exc.character:04x}: {exc.reason}"
        raise PlanError([Problem(filename, line, col, "", message)]) from None


def _yaml_message(exc: yaml.MarkedYAMLError) -> str:
    message = f"invalid YAML: {exc.problem or 'syntax error'}"
    if exc.context and exc.context_mark and exc.context_mark is not exc.problem_mark:
        message += f" ({exc.context} started at line {exc.context_mark.line + 1})"
    elif exc.context:
        message += f" ({exc.context})"
    return message


class _Locator:
    """Maps a plan path to the 1-based (line, column) of its node in the YAML document."""

    def __init__(self, root: object):
        self.root = root

    def __call__(self, path: Path, *, key: bool = False) -> tuple[int, int] | None:
        node = self.root
        pos = node.mark if isinstance(node, _Map | _Seq) else (0, 0)
        for i, part in enumerate(path):
            if isinstance(node, _Map) and isinstance(part, str) and part in node.marks:
                marks = node.marks[part]  # merged keys (<<: *x) carry no marks
                pos = marks[:2] if key and i == len(path) - 1 else marks[2:]
            elif isinstance(node, _Seq) and isinstance(part, int) and 0 <= part < len(node):
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


def _show(value: object) -> str:
    text = repr(str(value)) if not isinstance(value, int | float) or isinstance(value, bool) else repr(value)
    return text if len(text) <= 60 else text[:57] + "...'"


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
        hint = did_you_mean(str(path[-1]), allowed)
        if not hint and allowed:
            hint = "; allowed: " + ", ".join(allowed)
        return source.problem(path, f"unknown field {str(path[-1])!r}{hint}", key=True)
    if model is SecretRef and not isinstance(value, Mapping):
        return source.problem(path, LITERAL_SECRET)
    if kind in ("enum", "literal_error"):
        choices = _choices(ctx.get("expected", ""))
        message = f"invalid value {_show(value)}: expected " + " or ".join(repr(c) for c in choices)
        return source.problem(path, message + did_you_mean(str(value), choices))
    if kind == "union_tag_invalid":
        choices = _choices(ctx.get("expected_tags", ""))
        message = f"unknown hook kind {_show(ctx.get('tag'))}: expected " + ", ".join(map(repr, choices))
        return source.problem((*path, "kind"), message + did_you_mean(str(ctx.get("tag")), choices))
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
            f"invalid name {_show(value)}: use letters, digits, '.', '_' and '-', "
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
            model = _HOOK_CLASSES.get(raw.get("kind"))
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
        """A list of names with some invalid entries: keep the positions, ignore the invalid ones."""
        if not isinstance(raw, list):
            return None
        out = []
        for entry in raw:
            try:
                out.append(_NAME.validate_python(entry))
            except pydantic.ValidationError:
                out.append(str(entry))
                self.broken_names.add(str(entry))
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
