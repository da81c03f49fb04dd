"""Reading YAML while keeping where every value was written (file, line, column).

PyYAML's ``compose`` gives the node tree with marks; values are built one scalar at a time
so each problem can name its position. Problems are collected, not raised one by one, so an
author sees every mistake in a file at once.

Rule, catalogue and test files come from authors, not from CarePath, so reading one is bounded
(:class:`BoundedLoader`): anchors and aliases (``&name`` / ``*name``) are refused -- an 8 KB file
of aliases to aliases expands to billions of nodes, and every walk over the tree after it would
run for hours -- and so are more than :data:`MAX_NODES` nodes, nesting deeper than
:data:`MAX_DEPTH`, tags other than YAML's own, and bytes that are not UTF-8. Each is a problem
with the file, line and column where it is. A file is read only when it is a regular file of at most
:data:`MAX_FILE_BYTES` (:func:`read_author_bytes`).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent, CollectionStartEvent, NodeEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from engine.errors import Problem, RuleFileError
from engine.files import MAX_YAML_BYTES, NOT_REGULAR, FileRefusedError, read_regular_file
from engine.rules.model import Loc

__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_NODES",
    "BoundedLoader",
    "YamlReader",
    "decode_yaml",
    "read_author_bytes",
    "read_yaml_file",
]

# The bundled rule set has about 5,600 nodes nested 16 deep; these leave room for ten times that.
MAX_NODES = 50_000
MAX_FILE_BYTES = MAX_YAML_BYTES  # engine.files: a file over it is refused unread
MAX_DEPTH = 64
_YAML_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp")
)

_TYPE_NAMES = {
    "tag:yaml.org,2002:str": "text",
    "tag:yaml.org,2002:int": "a whole number",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:bool": "true/false",
    "tag:yaml.org,2002:null": "nothing",
    "tag:yaml.org,2002:map": "a mapping",
    "tag:yaml.org,2002:seq": "a list",
}


class _Refused(yaml.MarkedYAMLError):
    """A document the bounded loader will not read, with where it stopped."""

    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem=problem, problem_mark=mark)


class BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with bounds: no anchors or aliases, at most :data:`MAX_NODES` nodes
    nested at most :data:`MAX_DEPTH` deep, only YAML's own tags. Raises ``yaml.MarkedYAMLError``
    at the first node past a bound, so the problem has a line and column."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self.node_count = 0
        self.depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event = self.peek_event()
        if isinstance(event, AliasEvent) or (isinstance(event, NodeEvent) and event.anchor is not None):
            raise _Refused(
                "anchors and aliases (&name, *name) are not allowed: write the value out in full", event.start_mark
            )
        tag = getattr(event, "tag", None)
        if tag not in (None, "!") and tag not in _YAML_TAGS:
            raise _Refused(
                f"the tag {str(tag)[:50]!r} is not allowed: only YAML's own types are read", event.start_mark
            )
        self.node_count += 1
        if self.node_count > MAX_NODES:
            raise _Refused(f"the file has more than {MAX_NODES} values: split it", event.start_mark)
        if isinstance(event, CollectionStartEvent):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise _Refused(f"lists and mappings are nested more than {MAX_DEPTH} deep", event.start_mark)
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1
        return super().compose_node(parent, index)


def decode_yaml(data: bytes, file: str) -> str:
    """The text of a YAML file's bytes.

    Raises:
        RuleFileError: the bytes are not UTF-8, naming the line and column of the first bad byte.
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        column = len(before[before.rfind(b"\n") + 1 :].decode("utf-8", "replace")) + 1
        raise RuleFileError(
            f"{file}: the file is not UTF-8",
            [
                Problem(
                    f"not UTF-8: byte 0x{data[exc.start]:02x} cannot start or continue a character here (save the "
                    "file as "
                    "UTF-8)",
                    file=file,
                    line=line,
                    column=column,
                )
            ],
        ) from exc


def read_author_bytes(path: Path | str) -> bytes:
    """The bytes of an author's YAML file (rules, catalogue, tests): a regular file of at most
    :data:`MAX_FILE_BYTES` (:func:`engine.files.read_regular_file`), else refused unread.

    Raises:
        RuleFileError: the file cannot be read, is not a regular file, or is too large; naming the file.
    """
    try:
        return read_regular_file(path, MAX_FILE_BYTES)
    except FileRefusedError as exc:
        reason = f"{exc} (a rule, catalogue or test file must be one)" if exc.reason == NOT_REGULAR else str(exc)
        raise RuleFileError(f"{path}: {reason}", [Problem(reason, file=str(path))]) from exc


def read_yaml_file(path: Path | str) -> str:
    """Read a YAML file as UTF-8 text (see :func:`read_author_bytes`).

    Raises:
        RuleFileError: the file cannot be read, is not a regular file or is too large, or is not UTF-8
            (with the line and column).
    """
    return decode_yaml(read_author_bytes(path), str(path))


class YamlReader:
    """Reads one YAML document and records problems against ``file``.

    Every ``expect_*`` method returns ``None`` (and records a problem) when the node is not
    what the grammar expects, so parsing can carry on and report everything.
    """

    def __init__(self, file: str, element: str | None = None) -> None:
        self.file = file
        self.problems: list[Problem] = []
        self.element = element  # the rule id being read, for messages
        self._constructor = SafeConstructor()

    # --- the document ---

    def compose(self, text: str) -> Node | None:
        try:
            node = yaml.compose(text, Loader=BoundedLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            message = f"not valid YAML: {exc.problem or exc.context}"
            self.problems.append(
                Problem(
                    message,
                    file=self.file,
                    line=mark.line + 1 if mark else None,
                    column=mark.column + 1 if mark else None,
                )
            )
            return None
        except yaml.YAMLError as exc:
            self.problems.append(Problem(f"not valid YAML: {exc}", file=self.file))
            return None
        if node is None:
            self.problems.append(Problem("the file is empty", file=self.file, line=1, column=1))
            return None
        return node if self._constructible(node) else None

    def _constructible(self, root: Node) -> bool:
        """Whether every scalar of the document can be built as its YAML type; a problem at each that
        cannot. PyYAML's constructors raise ValueError / OverflowError of their own for a date that
        is not in the calendar (2026-02-30) or a whole number past Python's 4,300 digits: read later,
        one value at a time, that stopped ``validate`` and ``rules test`` with a traceback."""
        ok = True
        pending = [root]
        while pending:  # no recursion: the composer bounds the depth, not this walk
            node = pending.pop()
            if isinstance(node, MappingNode):
                pending.extend(item for pair in node.value for item in pair)
            elif isinstance(node, SequenceNode):
                pending.extend(node.value)
            elif isinstance(node, ScalarNode) and node.tag in _BUILT:
                try:
                    self._constructor.construct_object(node, deep=True)
                except (ValueError, OverflowError, ArithmeticError) as exc:
                    ok = False
                    self.problem(node, _unbuildable(node, exc))
        return ok

    # --- positions and problems ---

    def loc(self, node: Node) -> Loc:
        return Loc(self.file, node.start_mark.line + 1, node.start_mark.column + 1)

    def problem(self, node: Node | Loc, message: str, element: str | None = None) -> None:
        loc = node if isinstance(node, Loc) else self.loc(node)
        self.problems.append(
            Problem(message, file=self.file, line=loc.line, column=loc.column, element=element or self.element)
        )

    # --- shapes ---

    def mapping(
        self,
        node: Node,
        what: str,
        required: tuple[str, ...] = (),
        optional: tuple[str, ...] = (),
    ) -> dict[str, tuple[Node, Node]] | None:
        """The entries of a mapping node: key -> (key node, value node).

        Unknown keys get a "did you mean" from the allowed ones; missing required keys are
        reported at the mapping's start.
        """
        if not isinstance(node, MappingNode):
            self.problem(node, f"expected {what} as a mapping, got {self.kind(node)}")
            return None
        allowed = required + optional
        entries: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in node.value:
            key = self.key(key_node)
            if key is None:
                continue
            if key in entries:
                first = self.loc(entries[key][0])
                self.problem(key_node, f"'{key}' is given twice in {what} (first at line {first.line})")
                continue
            if allowed and key not in allowed:
                self.problem(key_node, f"unknown field '{key}' in {what}{did_you_mean(key, allowed)}")
                continue
            entries[key] = (key_node, value_node)
        for key in required:
            if key not in entries:
                self.problem(node, f"{what} needs '{key}'")
        return entries

    def free_mapping(self, node: Node, what: str) -> list[tuple[str, Node, Node]] | None:
        """A mapping whose keys are data (codes, field names), in written order."""
        entries = self.mapping(node, what)
        if entries is None:
            return None
        return [(key, k, v) for key, (k, v) in entries.items()]

    def sequence(self, node: Node, what: str) -> list[Node] | None:
        if not isinstance(node, SequenceNode):
            self.problem(node, f"expected {what} as a list, got {self.kind(node)}")
            return None
        return list(node.value)

    def sequence_or_one(self, node: Node) -> list[Node]:
        """Accept a single item where a list is usual (``inform: info-fatigue``)."""
        return list(node.value) if isinstance(node, SequenceNode) else [node]

    # --- scalars ---

    def key(self, node: Node) -> str | None:
        if not isinstance(node, ScalarNode) or node.tag != "tag:yaml.org,2002:str":
            if isinstance(node, ScalarNode):
                return str(node.value)
            self.problem(node, f"expected a field name, got {self.kind(node)}")
            return None
        return str(node.value)

    def value(self, node: Node) -> Any:
        return self._constructor.construct_object(node, deep=True)

    def text(self, node: Node, what: str) -> str | None:
        if not isinstance(node, ScalarNode) or node.tag != "tag:yaml.org,2002:str":
            self.problem(node, f"expected {what} as text, got {self.kind(node)}")
            return None
        value = str(node.value).strip()
        if not value:
            self.problem(node, f"{what} must not be empty")
            return None
        return value

    def integer(self, node: Node, what: str) -> int | None:
        if not isinstance(node, ScalarNode) or node.tag != "tag:yaml.org,2002:int":
            self.problem(node, f"expected {what} as a whole number, got {self.kind(node)}")
            return None
        return int(self.value(node))

    def number(self, node: Node, what: str) -> float | None:
        if not isinstance(node, ScalarNode) or node.tag not in (
            "tag:yaml.org,2002:int",
            "tag:yaml.org,2002:float",
        ):
            self.problem(node, f"expected {what} as a number, got {self.kind(node)}")
            return None
        value = self.value(node)
        return int(value) if isinstance(value, int) else float(value)

    def boolean(self, node: Node, what: str) -> bool | None:
        if not isinstance(node, ScalarNode) or node.tag != "tag:yaml.org,2002:bool":
            self.problem(node, f"expected {what} as true or false, got {self.kind(node)}")
            return None
        return bool(self.value(node))

    def choice(self, node: Node, what: str, choices: tuple[str, ...]) -> str | None:
        value = self.text(node, what)
        if value is None:
            return None
        if value not in choices:
            self.problem(
                node,
                f"unknown {what} '{value}'; expected one of {', '.join(choices)}{did_you_mean(value, choices)}",
            )
            return None
        return value

    def kind(self, node: Node) -> str:
        if isinstance(node, ScalarNode):
            name = _TYPE_NAMES.get(node.tag, node.tag)
            return f"{name} '{node.value}'" if node.value != "" else name
        return _TYPE_NAMES.get(node.tag, node.tag)


# Scalars PyYAML builds with conversions that can fail (text, true/false and null cannot).
_BUILT = frozenset(f"tag:yaml.org,2002:{name}" for name in ("int", "float", "timestamp"))


def _unbuildable(node: ScalarNode, exc: BaseException) -> str:
    """Why a scalar cannot be read, in an author's words (never Python's advice to raise a limit)."""
    text = str(node.value)
    if node.tag == "tag:yaml.org,2002:timestamp":
        return f"'{text[:40]}' is not a date in the calendar ({exc}): write a real date such as 2026-02-28"
    if node.tag == "tag:yaml.org,2002:int" and len(text) > 40:
        return f"a whole number of {len(text)} characters is too long to read: write a smaller number"
    return f"'{text[:40]}' cannot be read as a number: write a smaller number"


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """``; did you mean 'x'?`` for the closest candidate, or nothing."""
    close = difflib.get_close_matches(word, sorted(candidates), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""
