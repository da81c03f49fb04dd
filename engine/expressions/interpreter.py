"""The running half of the safe expression language: a node-by-node interpreter with step,
time and size bounds. Author text is never given to eval, exec or compile.
"""

from __future__ import annotations

import ast
import difflib
import math
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from engine.clock import Clock
from engine.errors import CarePathError, ExpressionError
from engine.expressions import functions as fn
from engine.expressions.checker import (
    COMPARE,
    CONVERSIONS,
    DEADLINE_EVERY,
    ITERABLE_TYPES,
    OPERATORS,
    SUBSCRIPTABLE_TYPES,
    fail,
    refuse,
)
from engine.expressions.functions import ALLOWED_FUNCTIONS

# --- interpreter ----------------------------------------------------------------------------------


class _Break(Exception):
    """Internal: unwinds to the enclosing loop (the checker refuses 'break' outside loops)."""


class _Continue(Exception):
    """Internal: unwinds to the enclosing loop's next item."""


def describe(exc: Exception) -> str:
    """What went wrong, for the author, worded without the values involved: the message is kept in
    an incident and the event trail, and the values may be a patient's (a key that is an NHS number,
    the text ``int()`` could not read)."""
    if isinstance(exc, fn.Refusal | fn.TypeRefusal):  # CarePath's own wording, already value-free
        return str(exc)
    if isinstance(exc, ZeroDivisionError):
        return "division by zero"
    if isinstance(exc, KeyError):
        return f"the key (a {type(exc.args[0]).__name__}) is not there" if exc.args else "a key is not there"
    if isinstance(exc, IndexError):
        return "the position is out of range"
    if isinstance(exc, RecursionError):
        return "the expression is nested too deeply"
    if isinstance(exc, MemoryError):
        return "the expression ran out of memory"
    if isinstance(exc, TypeError | OverflowError):  # Python's texts name types and limits, not values
        return str(exc)
    if isinstance(exc, ValueError):  # Python's texts quote the value: "invalid literal for int(): '...'"
        return "a value is not of the form the operation expects (ValueError)"
    return f"{type(exc).__name__} while evaluating the expression"


class Interpreter:
    """Runs one checked tree. A fresh one per call, so nothing is shared between threads.

    ``scopes`` runs from outermost (external context) to innermost (comprehension variables);
    ``frame`` is where assignments and ``:=`` write.
    """

    def __init__(self, scopes: list[Mapping[str, Any]], frame: dict[str, Any], clock: Clock,
                 limits: tuple[int, float], *, script: bool) -> None:  # fmt: skip
        self.scopes: list[Mapping[str, Any]] = [*scopes, frame]
        self.frame = frame
        self.clock = clock
        self.script = script
        self.max_steps = limits[0]
        self.deadline = time.monotonic() + limits[1]
        self.steps = 0
        self.built = 0

    def account(self, node: ast.AST, value: Any) -> Any:
        """Count a newly built value against the evaluation's budget (fn.built_size); returns it."""
        self.built += fn.built_size(value, fn.MAX_BUILT - self.built)
        if self.built > fn.MAX_BUILT:
            raise fail(node, f"the expression built more than {fn.MAX_BUILT} items or characters", "size-limit")
        return value

    def tick(self, node: ast.AST) -> None:
        self.steps += 1
        if self.steps > self.max_steps:
            raise fail(node, f"the expression exceeded its step limit ({self.max_steps} steps)", "step-limit")
        if self.steps % DEADLINE_EVERY == 0 and time.monotonic() > self.deadline:
            raise fail(node, "the expression exceeded its step limit (time limit reached)", "step-limit")

    def eval(self, node: ast.AST) -> Any:
        self.tick(node)
        try:
            return _EVALUATORS[type(node)](self, node)
        except (CarePathError, _Break, _Continue):
            raise
        except Exception as exc:  # every other failure becomes an ExpressionError at this node
            raise fail(node, describe(exc)) from None

    def run(self, statements: list[ast.stmt]) -> None:
        for statement in statements:
            self.tick(statement)
            try:
                _EXECUTORS[type(statement)](self, statement)
            except (CarePathError, _Break, _Continue):
                raise
            except Exception as exc:
                raise fail(statement, describe(exc)) from None

    # expressions

    def constant(self, node: ast.Constant) -> Any:
        return node.value

    def name(self, node: ast.Name) -> Any:
        for scope in reversed(self.scopes):
            if node.id in scope:
                value = scope[node.id]
                if callable(value):  # only the helpers may be called, and only by name
                    raise refuse(node, f"the variable '{node.id}' holds a function")
                return value
        known = {key for scope in self.scopes for key in scope if isinstance(key, str)}
        close = difflib.get_close_matches(node.id, sorted(known), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise fail(node, f"unknown variable '{node.id}'{hint}", "unknown-variable")

    def binop(self, node: ast.BinOp) -> Any:
        result = fn.arithmetic(OPERATORS[type(node.op)], self.eval(node.left), self.eval(node.right))
        return self.account(node, result)

    def unaryop(self, node: ast.UnaryOp) -> Any:
        value = self.eval(node.operand)
        if isinstance(node.op, ast.Not):
            return not value
        if not isinstance(value, int | float):
            raise fn.TypeRefusal(f"bad operand type for unary minus or plus: '{type(value).__name__}'")
        return -value if isinstance(node.op, ast.USub) else +value

    def boolop(self, node: ast.BoolOp) -> Any:
        value: Any = None
        for operand in node.values:
            value = self.eval(operand)
            if bool(value) != isinstance(node.op, ast.And):
                return value
        return value

    def compare(self, node: ast.Compare) -> bool:
        left = self.eval(node.left)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = self.eval(comparator)
            if not COMPARE[type(op)](left, right):
                return False
            left = right
        return True

    def ifexp(self, node: ast.IfExp) -> Any:
        return self.eval(node.body) if self.eval(node.test) else self.eval(node.orelse)

    def subscript(self, node: ast.Subscript) -> Any:
        container = self.eval(node.value)
        if type(container) not in SUBSCRIPTABLE_TYPES:
            raise fn.TypeRefusal(f"a {type(container).__name__} cannot be indexed")
        key = self.index(node.slice)
        try:
            return container[key]
        except KeyError:
            if isinstance(node.slice, ast.Constant):  # the diagram's own text, not a value: named
                raise fn.Refusal(f"the key {node.slice.value!r} is not there") from None
            raise

    def index(self, node: ast.expr) -> Any:
        if not isinstance(node, ast.Slice):
            return self.eval(node)
        parts = [None if p is None else self.eval(p) for p in (node.lower, node.upper, node.step)]
        if not all(p is None or isinstance(p, int) for p in parts):
            raise fn.TypeRefusal("slice positions must be whole numbers")
        return slice(*parts)

    def sequence(self, node: ast.List | ast.Tuple | ast.Set) -> Any:
        items = [self.eval(element) for element in node.elts]
        return self.account(node, {ast.List: list, ast.Tuple: tuple, ast.Set: set}[type(node)](items))

    def dict_(self, node: ast.Dict) -> dict[Any, Any]:
        built = {self.eval(k): self.eval(v) for k, v in zip(node.keys, node.values, strict=True) if k}
        return self.account(node, built)

    def fstring(self, node: ast.JoinedStr) -> str:
        text = "".join(str(self.eval(part)) for part in node.values)
        if len(text) > fn.MAX_TEXT:
            raise fn.Refusal(f"the text would be longer than {fn.MAX_TEXT} characters")
        return self.account(node, text)

    def formatted(self, node: ast.FormattedValue) -> str:
        value = self.eval(node.value)
        fn.check_text_size(value)
        convert: Callable[[Any], Any] | None = CONVERSIONS.get(node.conversion)
        if convert is not None:
            value = convert(value)
        spec = "" if node.format_spec is None else self.eval(node.format_spec)
        fn.check_format_spec(spec)
        return format(value, spec)

    def comprehension(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp) -> Any:
        scope: dict[str, Any] = {}
        self.scopes.append(scope)
        try:
            if isinstance(node, ast.DictComp):
                built = {k: v for k, v in self.generate(node.generators, scope, (node.key, node.value))}
                return self.account(node, built)
            items = [item for (item,) in self.generate(node.generators, scope, (node.elt,))]
        finally:
            self.scopes.pop()
        # Generator expressions are built eagerly: a generator object would be a value with frames.
        return self.account(node, set(items) if isinstance(node, ast.SetComp) else items)

    def generate(self, generators: list[ast.comprehension], scope: dict[str, Any],
                 produce: tuple[ast.expr, ...]) -> Iterator[tuple[Any, ...]]:  # fmt: skip
        first, rest = generators[0], generators[1:]
        for item in self.iterate(first.iter):
            self.tick(first)
            self.bind(first.target, item, scope)
            if all(self.eval(condition) for condition in first.ifs):
                if rest:
                    yield from self.generate(rest, scope, produce)
                else:
                    yield tuple(self.eval(part) for part in produce)

    def iterate(self, node: ast.expr) -> list[Any]:
        iterable = self.eval(node)
        if type(iterable) not in ITERABLE_TYPES:
            raise fn.TypeRefusal(f"cannot loop over a {type(iterable).__name__}")
        return list(iterable)  # a snapshot: changing the data inside the loop does not extend it

    def call(self, node: ast.Call) -> Any:
        args = [self.eval(arg) for arg in node.args]
        kwargs = {str(k.arg): self.eval(k.value) for k in node.keywords}
        if isinstance(node.func, ast.Name):
            helper = ALLOWED_FUNCTIONS.get(node.func.id)
            if helper is None:
                raise refuse(node, f"calling '{node.func.id}' is not allowed")
            return self.account(node, helper.call(self.clock, args, kwargs))
        assert isinstance(node.func, ast.Attribute)  # guaranteed by the checker
        target = self.eval(node.func.value)
        if not fn.method_allowed(target, node.func.attr, allow_changes=self.script):
            raise refuse(node, f"the method '{node.func.attr}' is not available on {type(target).__name__}")
        for arg in args:  # list.extend(big) grows the list by big's size
            self.account(node, arg)
        return self.account(node, fn.call_method(target, node.func.attr, tuple(args), kwargs))

    def walrus(self, node: ast.NamedExpr) -> Any:
        value = self.eval(node.value)
        self.frame[node.target.id] = value
        return value

    def attribute(self, node: ast.Attribute) -> Any:
        raise refuse(node, f"attribute access '{node.attr}' is not allowed")

    # statements

    def bind(self, target: ast.expr, value: Any, scope: dict[str, Any]) -> None:
        if isinstance(target, ast.Name):
            scope[target.id] = value
        elif isinstance(target, ast.Subscript):
            container = self.eval(target.value)
            if type(container) not in (list, dict):
                raise fn.TypeRefusal(f"items of a {type(container).__name__} cannot be assigned")
            container[self.eval(target.slice)] = self.account(target, value)  # the container now holds it
        else:
            assert isinstance(target, ast.Tuple | ast.List)  # guaranteed by the checker
            if type(value) not in ITERABLE_TYPES or len(value) != len(target.elts):
                raise fn.Refusal(f"expected {len(target.elts)} values to unpack")
            for element, item in zip(target.elts, list(value), strict=True):
                self.bind(element, item, scope)

    def assign(self, node: ast.Assign) -> None:
        value = self.eval(node.value)
        for target in node.targets:
            self.bind(target, value, self.frame)

    def augassign(self, node: ast.AugAssign) -> None:
        symbol = OPERATORS[type(node.op)]
        if isinstance(node.target, ast.Name):
            current = self.name(ast.Name(id=node.target.id, lineno=node.lineno, col_offset=node.col_offset))
            self.frame[node.target.id] = self.account(node, fn.arithmetic(symbol, current, self.eval(node.value)))
            return
        assert isinstance(node.target, ast.Subscript)  # guaranteed by the checker
        container = self.eval(node.target.value)
        if type(container) not in (list, dict):
            raise fn.TypeRefusal(f"items of a {type(container).__name__} cannot be assigned")
        key = self.eval(node.target.slice)
        container[key] = self.account(node, fn.arithmetic(symbol, container[key], self.eval(node.value)))

    def if_(self, node: ast.If) -> None:
        self.run(node.body if self.eval(node.test) else node.orelse)

    def loop_body(self, body: list[ast.stmt]) -> bool:
        """Run one pass of a loop body; False when it ended with 'break'."""
        try:
            self.run(body)
        except _Continue:
            pass
        except _Break:
            return False
        return True

    def for_(self, node: ast.For) -> None:
        for item in self.iterate(node.iter):
            self.bind(node.target, item, self.frame)
            if not self.loop_body(node.body):
                return
        self.run(node.orelse)

    def while_(self, node: ast.While) -> None:
        while self.eval(node.test):
            if not self.loop_body(node.body):
                return
        self.run(node.orelse)

    def delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            if isinstance(target, ast.Name):
                if target.id not in self.frame:
                    raise fail(target, f"unknown variable '{target.id}'", "unknown-variable")
                del self.frame[target.id]
            else:
                assert isinstance(target, ast.Subscript)  # guaranteed by the checker
                container = self.eval(target.value)
                if type(container) not in (list, dict):
                    raise fn.TypeRefusal(f"items of a {type(container).__name__} cannot be deleted")
                del container[self.eval(target.slice)]

    def break_(self, node: ast.Break) -> None:
        raise _Break

    def continue_(self, node: ast.Continue) -> None:
        raise _Continue

    def pass_(self, node: ast.stmt) -> None:
        pass

    def expr(self, node: ast.Expr) -> None:
        self.eval(node.value)


_EVALUATORS: dict[type, Callable[[Interpreter, Any], Any]] = {
    ast.Constant: Interpreter.constant, ast.Name: Interpreter.name, ast.BinOp: Interpreter.binop,
    ast.UnaryOp: Interpreter.unaryop, ast.BoolOp: Interpreter.boolop, ast.Compare: Interpreter.compare,
    ast.IfExp: Interpreter.ifexp, ast.Subscript: Interpreter.subscript, ast.List: Interpreter.sequence,
    ast.Tuple: Interpreter.sequence, ast.Set: Interpreter.sequence, ast.Dict: Interpreter.dict_,
    ast.JoinedStr: Interpreter.fstring, ast.FormattedValue: Interpreter.formatted,
    ast.ListComp: Interpreter.comprehension, ast.SetComp: Interpreter.comprehension,
    ast.GeneratorExp: Interpreter.comprehension, ast.DictComp: Interpreter.comprehension,
    ast.Call: Interpreter.call, ast.NamedExpr: Interpreter.walrus, ast.Attribute: Interpreter.attribute,
}  # fmt: skip
_EXECUTORS: dict[type, Callable[[Interpreter, Any], None]] = {
    ast.Assign: Interpreter.assign, ast.AugAssign: Interpreter.augassign, ast.If: Interpreter.if_,
    ast.For: Interpreter.for_, ast.While: Interpreter.while_, ast.Delete: Interpreter.delete,
    ast.Break: Interpreter.break_, ast.Continue: Interpreter.continue_, ast.Pass: Interpreter.pass_,
    ast.Expr: Interpreter.expr,
}  # fmt: skip


# --- task data stays JSON -----------------------------------------------------------------------


_JSON_SCALARS = frozenset({str, int, bool, type(None)})


def as_json(value: Any, variable: str, inside: frozenset[int] = frozenset()) -> Any:
    """``value`` with tuples turned into lists; raises ExpressionError for anything JSON cannot hold."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        raise ExpressionError(f"'{variable}' would hold {value}, which task data cannot store")
    if id(value) in inside:
        raise ExpressionError(f"'{variable}' would contain itself, which task data cannot store")
    inside = inside | {id(value)}
    if isinstance(value, list | tuple):
        if set(map(type, value)) <= _JSON_SCALARS:  # fast path (C speed) for long lists of numbers
            return list(value)
        return [as_json(item, variable, inside) for item in value]
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise ExpressionError(f"'{variable}' is a dict with keys that are not text; task data needs text keys")
        return {key: as_json(item, variable, inside) for key, item in value.items()}
    hint = " (use sorted(...) to store a set)" if isinstance(value, set | frozenset) else ""
    raise ExpressionError(f"'{variable}' would hold a {type(value).__name__}, which task data cannot store{hint}")


def unchanged(before: Any, after: Any) -> bool:
    try:
        return type(before) is type(after) and bool(before == after)
    except RecursionError:
        return False
