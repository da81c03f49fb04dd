"""Reading YAML while keeping where every value was written (file, line, column).

PyYAML's ``compose`` gives the node tree with marks; values are built one scalar at a time
so each problem can name its position. Problems are collected, not raised one by one, so an
author sees every mistake in a file at once.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from engine.errors import Problem
from engine.rules.model import Loc

__all__ = ["YamlReader"]

_TYPE_NAMES = {
    "tag:yaml.org,2002:str": "text",
    "tag:yaml.org,2002:int": "a whole number",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:bool": "true/false",
    "tag:yaml.org,2002:null": "nothing",
    "tag:yaml.org,2002:map": "a mapping",
    "tag:yaml.org,2002:seq": "a list",
}


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
            node = yaml.compose(text, Loader=yaml.SafeLoader)
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
        return node

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


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """``; did you mean 'x'?`` for the closest candidate, or nothing."""
    close = difflib.get_close_matches(word, sorted(candidates), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""
