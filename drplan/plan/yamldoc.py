"""Read one YAML document as dicts and lists that remember where each key, value and item starts.

libyaml (PyYAML's C parser) produces the events; :func:`read_document` builds them into
:class:`YamlMap`/:class:`YamlSeq` and scalars resolved by the YAML 1.2 core schema (``no`` and ``on``
stay strings). The work is bounded, so a hostile file is refused in well under a second:

- nesting deeper than :data:`MAX_DEPTH` levels is refused (libyaml itself stops at 1,000);
- an alias counts as a full copy of its anchor, and aliases that copy more than
  :data:`MAX_ALIAS_NODES` nodes in all are refused (nine levels of ``&lN [*lN-1 x10]`` make 10^9
  nodes out of 660 bytes); an alias to a node that contains it is refused;
- a tag other than the core schema's (``!!str``, ``!!int``, ``!!float``, ``!!bool``, ``!!null``,
  ``!!timestamp``, ``!!map``, ``!!seq``) is refused;
- the pure-Python parser, which words syntax errors better but is slow, only rewords a libyaml
  syntax error found in the first :data:`REWORD_CHARS` characters.

No message echoes a value, key, tag or alias name found under one of the ``secret_keys`` (a
password written as ``!Hunter2`` is a tag to YAML), and echoed values are shortened.
"""

from __future__ import annotations

import contextlib
import gc
import re
from collections.abc import Callable, Iterator
from typing import Any

import yaml
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

MAX_DEPTH = 64  # a plan nests five levels deep
# Nodes that aliases may copy: without aliases a 1 MB plan holds about 150,000 nodes (22,000 VMs);
# ``<<: *defaults`` and ``verify: *strict`` on each of 10,000 VMs copy about 120,000.
MAX_ALIAS_NODES = 200_000
REWORD_CHARS = 100_000  # the pure-Python parser reads about 0.5 MB/s

Position = tuple[int, int]  # 0-based (line, column), like the parser's marks


class YamlMap(dict[object, object]):
    """A YAML mapping; ``marks[key]`` is (key line, key column, value line, value column)."""

    __slots__ = ("mark", "marks")
    mark: Position
    marks: dict[object, tuple[int, int, int, int]]


class YamlSeq(list[object]):
    """A YAML sequence; ``marks[i]`` is the (line, column) of item ``i``."""

    __slots__ = ("mark", "marks")
    mark: Position
    marks: list[Position]


class YamlProblem(Exception):
    """The document cannot be read; ``line`` and ``col`` are 1-based."""

    def __init__(self, message: str, line: int, col: int):
        super().__init__(message)
        self.message, self.line, self.col = message, line, col


class _DocumentError(Exception):
    """A problem found while building the document (after the syntax was fine)."""

    def __init__(self, message: str, mark: Position):
        super().__init__(message)
        self.mark = mark


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
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


def read_document(text: str, secret_keys: frozenset[str] = frozenset()) -> object:
    """The single document in ``text``; raises :class:`YamlProblem`. Nothing found under a mapping
    key in ``secret_keys`` is echoed in a message."""
    try:
        try:
            return _read(_FAST_LOADER, text, secret_keys)
        except yaml.reader.ReaderError:  # libyaml counts bytes: let the pure-Python reader place it
            yaml.SafeLoader(text).dispose()  # (it checks the characters before parsing)
            raise
        except yaml.MarkedYAMLError as exc:
            if _FAST_LOADER is yaml.SafeLoader:
                raise
            _reword(exc, text, secret_keys)
    except _DocumentError as exc:
        line, col = exc.mark
        raise YamlProblem(f"invalid YAML: {exc}", line + 1, col + 1) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise YamlProblem(_yaml_message(exc), line, col) from None
    except yaml.reader.ReaderError as exc:  # a control character
        line = text.count("\n", 0, exc.position) + 1
        col = exc.position - text.rfind("\n", 0, exc.position)
        message = f"invalid YAML: unacceptable character #x{exc.character:04x}: {exc.reason}"
        raise YamlProblem(message, line, col) from None
    except UnicodeEncodeError as exc:  # a lone surrogate (not from a file read as UTF-8)
        line, col = text.count("\n", 0, exc.start) + 1, exc.start - text.rfind("\n", 0, exc.start)
        raise YamlProblem("invalid YAML: not Unicode text", line, col) from None
    raise AssertionError("unreachable")  # pragma: no cover


def _reword(exc: yaml.MarkedYAMLError, text: str, secret_keys: frozenset[str]) -> None:
    """Raise libyaml's syntax error ``exc``, worded by the pure-Python parser when that is cheap: it
    reads only up to two lines past the error, and only an error near the start of the file."""
    mark = exc.problem_mark or exc.context_mark
    if mark is None or "maximum nesting depth" in (exc.problem or ""):
        if mark is not None:
            raise _DocumentError(_DEPTH_MESSAGE, (mark.line, mark.column)) from None
        raise exc
    end = -1
    for _ in range(mark.line + 2):
        end = text.find("\n", end + 1)
        if end < 0:
            end = len(text)
            break
    if end > REWORD_CHARS:
        raise exc
    try:
        _read(yaml.SafeLoader, text[:end], secret_keys)
    except yaml.MarkedYAMLError as worded:
        again = worded.problem_mark or worded.context_mark
        if again is not None and again.line <= mark.line + 1:
            raise worded from None
    raise exc


def _read(loader_class: type, text: str, secret_keys: frozenset[str]) -> object:
    loader = loader_class(text)
    try:
        return _Builder(loader, secret_keys).build()
    finally:
        loader.dispose()


def _yaml_message(exc: yaml.MarkedYAMLError) -> str:
    message = f"invalid YAML: {exc.problem or 'syntax error'}"
    if exc.context and exc.context_mark and exc.context_mark is not exc.problem_mark:
        message += f" ({exc.context} started at line {exc.context_mark.line + 1})"
    elif exc.context:
        message += f" ({exc.context})"
    return message


# -- scalars ----------------------------------------------------------------------------------------

_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # PyYAML built without libyaml: slow
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
_NULLS = ("", "~", "null", "Null", "NULL")
_WORDS = {  # plain scalars that are not strings
    **dict.fromkeys(("true", "True", "TRUE"), True),
    **dict.fromkeys(("false", "False", "FALSE"), False),
    **dict.fromkeys(_NULLS),
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


class _BadScalar(ValueError):
    """A scalar that does not convert; the message never holds the scalar itself."""


def _to_int(text: str) -> int:
    digits = text.replace("_", "")
    if not _INT.fullmatch(text) or not digits.lstrip("+-"):
        raise ValueError(text)
    sign = -1 if digits[0] == "-" else 1
    digits = digits.lstrip("+-")
    base = {"0b": 2, "0o": 8, "0x": 16}.get(digits[:2])
    if base is None and len(digits) > 4000:  # Python refuses to convert longer decimal strings
        raise _BadScalar("more than 4,000 digits")
    return sign * (int(digits[2:], base) if base else int(digits))


def _to_float(text: str) -> float:
    digits = text.replace("_", "").lower()
    if digits.endswith(("inf", "nan")):
        digits = digits.replace(".", "")
    return float(digits)


def _to_timestamp(text: str) -> object:
    if not _TIMESTAMP.fullmatch(text):
        raise ValueError(text)
    node = yaml.ScalarNode(_CORE + "timestamp", text)
    try:
        return yaml.constructor.SafeConstructor().construct_yaml_timestamp(node)
    except (ValueError, OverflowError) as exc:  # "month must be in 1..12"
        raise _BadScalar(str(exc)) from None


def _to_null(text: str) -> None:
    if text not in _NULLS:
        raise ValueError(text)


_BY_TAG: dict[str, Callable[[str], object]] = {
    "str": str,
    "int": _to_int,
    "float": _to_float,
    "timestamp": _to_timestamp,
    "bool": lambda text: _BOOLS[text.lower()],
    "null": _to_null,
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


def _tag_name(tag: str) -> str:
    return "!!" + tag[len(_CORE) :] if tag.startswith(_CORE) else tag


def show(value: object, limit: int = 60) -> str:
    """``repr`` of a scalar's text, shortened to about ``limit`` characters."""
    text = repr(value if isinstance(value, str) else str(value))
    return text if len(text) <= limit else text[: limit - 4] + "...'"


# -- building -----------------------------------------------------------------------------------------

_MERGE = object()  # a pending ``<<`` key
_NO_KEY = object()
_HIDDEN = "(not shown: a secret belongs here)"
_DEPTH_MESSAGE = f"the document nests deeper than {MAX_DEPTH} levels"
_ALIAS_MESSAGE = (
    f"aliases copy more than {MAX_ALIAS_NODES:,} nodes (each alias counts as a full copy of its anchor)"
)
# a frame of an open collection: [collection, pending key or _NO_KEY, key mark, merges,
#                                 key or index in its parent, node count before it, anchor]
_COLL, _KEY, _KEY_MARK, _MERGES, _SLOT, _START, _ANCHOR = range(7)


def _mark(event: yaml.events.Event) -> Position:
    mark = event.start_mark
    assert mark is not None  # the parser marks every event
    return mark.line, mark.column


class _Builder:
    """Turns one parser's event stream into the document. A duplicate key is reported only once the
    whole stream parsed, so a syntax error anywhere takes precedence."""

    def __init__(self, parser: yaml.SafeLoader, secret_keys: frozenset[str]):
        self.parser, self.secret_keys = parser, secret_keys
        self.stack: list[list[Any]] = []  # frames, laid out as above
        # anchor -> (node, mark, expanded size; None while the node is still open)
        self.anchors: dict[str, tuple[object, Position, int | None]] = {}
        self.nodes = 0  # nodes so far, aliases counted as expanded
        self.copied = 0  # nodes that aliases copied

    def hidden(self) -> bool:
        """Whether the next event lies under a secret key."""
        keys = self.secret_keys
        if not keys or not self.stack:
            return False
        top = self.stack[-1]
        if type(top[_COLL]) is YamlMap and top[_KEY] in keys:
            return True
        return any(frame[_SLOT] in keys for frame in self.stack)

    def fail(self, message: str, hidden_message: str, mark: Position) -> _DocumentError:
        return _DocumentError(f"{hidden_message} {_HIDDEN}" if self.hidden() else message, mark)

    def _unsupported(self, tag: str, mark: Position) -> _DocumentError:
        return self.fail(f"tag {_tag_name(tag)!r} is not supported", "tags are not supported", mark)

    def scalar(self, event: ScalarEvent) -> object:
        tag = event.tag
        try:
            if tag is None or tag == "!":
                return _plain(event.value) if event.implicit[0] else event.value
            convert = _BY_TAG.get(tag[len(_CORE) :]) if tag.startswith(_CORE) else None
            if convert is None:
                raise self._unsupported(tag, _mark(event))
            return convert(event.value)
        except (ValueError, KeyError) as exc:  # only _BadScalar's text is safe to show
            what = _tag_name(tag)[2:] if tag not in (None, "!") else "number or date"
            reason = f": {exc}" if isinstance(exc, _BadScalar) else ""
            message = f"{show(event.value)} is not a valid {what}{reason}"
            raise self.fail(message, f"this value is not a valid {what}{reason}", _mark(event)) from None

    def build(self) -> object:
        # events are told apart by ``type(event) is ...`` (fast), which the type checker cannot follow
        get_event: Callable[[], Any] = self.parser.get_event
        stack, anchors = self.stack, self.anchors
        root: object = None
        slot: object  # the new node's key or index in its parent
        first_document: Position | None = None
        duplicate: _DocumentError | None = None
        while True:
            event = get_event()
            kind = type(event)
            if kind is ScalarEvent:
                value, mark, size = self.scalar(event), (event.start_mark.line, event.start_mark.column), 1
            elif kind is MappingStartEvent or kind is SequenceStartEvent:
                mark = _mark(event)
                if event.tag not in (None, "!", _CORE + ("map" if kind is MappingStartEvent else "seq")):
                    raise self._unsupported(event.tag, mark)
                if len(stack) >= MAX_DEPTH:
                    raise _DocumentError(_DEPTH_MESSAGE, mark)
                coll: YamlMap | YamlSeq
                if kind is MappingStartEvent:
                    coll = YamlMap()
                    coll.marks = {}
                else:
                    coll = YamlSeq()
                    coll.marks = []
                coll.mark = mark
                value, size = coll, 1
            elif kind is MappingEndEvent or kind is SequenceEndEvent:
                frame = stack.pop()
                anchor = frame[_ANCHOR]
                if anchor is not None and anchors[anchor][0] is frame[_COLL]:  # (not redefined inside)
                    anchors[anchor] = frame[_COLL], frame[_COLL].mark, self.nodes - frame[_START]
                for merged in frame[_MERGES] or ():
                    for key, item in merged.items():
                        frame[_COLL].setdefault(key, item)
                continue
            elif kind is AliasEvent:
                value, mark, size = self.alias(event)
                self.copied += size
                if self.copied > MAX_ALIAS_NODES:
                    raise _DocumentError(_ALIAS_MESSAGE, _mark(event))
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
            self.nodes += size
            if not stack:
                root, slot = value, None
            else:
                frame = stack[-1]
                parent = frame[_COLL]
                if type(parent) is YamlSeq:
                    slot = len(parent)
                    parent.append(value)
                    parent.marks.append(mark)
                elif frame[_KEY] is _NO_KEY:  # a key
                    if type(value) is YamlMap or type(value) is YamlSeq:
                        raise _DocumentError("a mapping key must be a scalar", mark)
                    if value == "<<" and kind is ScalarEvent and event.tag is None and event.implicit[0]:
                        value = _MERGE
                    elif value in parent.marks and duplicate is None:
                        duplicate = self.fail(f"duplicate key {show(value)}", "duplicate key", mark)
                    frame[_KEY], frame[_KEY_MARK] = value, mark
                    slot = None  # a key is a scalar: no frame
                elif frame[_KEY] is _MERGE:
                    if type(value) is YamlMap:
                        merges: list[object] = [value]
                    elif type(value) is YamlSeq and all(type(v) is YamlMap for v in value):
                        merges = value
                    else:
                        raise _DocumentError("a merge key (<<) takes a mapping or a list of mappings", mark)
                    if frame[_MERGES] is None:
                        frame[_MERGES] = []
                    frame[_MERGES].extend(merges)
                    frame[_KEY], slot = _NO_KEY, "<<"
                else:
                    slot = frame[_KEY]
                    parent[slot] = value
                    parent.marks[slot] = frame[_KEY_MARK] + mark
                    frame[_KEY] = _NO_KEY
            if kind is MappingStartEvent or kind is SequenceStartEvent:
                anchor = event.anchor
                if anchor is not None:
                    anchors[anchor] = value, mark, None
                stack.append([value, _NO_KEY, None, None, slot, self.nodes - 1, anchor])
            elif kind is ScalarEvent and event.anchor is not None:
                anchors[event.anchor] = value, mark, 1

    def alias(self, event: AliasEvent) -> tuple[object, Position, int]:
        name = event.anchor
        if name not in self.anchors:
            message = f"found undefined alias {show(name)}"
            raise self.fail(message, "found an undefined alias", _mark(event))
        value, mark, size = self.anchors[name]
        if size is None:
            message = f"alias {show(name)} refers to a node that contains it; a plan cannot be recursive"
            raise self.fail(message, "this alias refers to a node that contains it", _mark(event))
        return value, mark, size
