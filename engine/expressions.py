"""The safe expression language of CarePath diagrams, and its SpiffWorkflow script environment.

Gateway conditions, script tasks, pre/post scripts and timer expressions are written by clinical
authors and run on a server holding patient data. SpiffWorkflow would ``eval``/``exec`` them as full
Python, and blacklists were escaped (LIBRARY_NOTES, "Scripts and conditions"). Here the text is parsed
with :mod:`ast`, checked against a whitelist, and then *interpreted* node by node: author text is never
given to ``eval``, ``exec`` or ``compile``. Whatever is not listed below is refused.

Expressions (conditions, timers):
    literals (text, numbers, True/False/None, lists, tuples, dicts, sets); names from the task data;
    ``== != < <= > >=`` (chains like ``18 <= age < 25``), ``in`` / ``not in``, ``is None`` /
    ``is not None``; ``+ - * / // % **`` and unary ``-``; ``and or not``; ``a if c else b``;
    ``x[i]``, ``x['key']``, ``x[1:3]``; f-strings (format specs are constant and short);
    list/dict/set comprehensions and generator expressions; ``(name := value)``;
    calls to the helpers in :data:`ALLOWED_FUNCTIONS` by plain name (dates are 'YYYY-MM-DD' text), and
    the methods ``str.lower/upper/strip/lstrip/rstrip/startswith/endswith/split/join/replace``,
    ``dict.get/keys/values/items``, ``list.count/index``.
Scripts (script tasks, pre/post scripts) add the statements:
    ``x = ...``, ``d['k'] = ...``, ``a, b = ...``, ``x += ...``, ``if/elif/else``, ``for``, ``while``,
    ``break``, ``continue``, ``pass``, ``del x`` / ``del d['k']``, calls as statements, and the methods
    ``list.append/extend/insert/pop/remove``, ``dict.update/pop/setdefault``, ``set.add/discard``.
Refused: imports, ``def``, ``lambda``, classes, ``global``, ``with``, ``try``, ``raise``, ``assert``,
    ``yield``, ``await``, ``*args`` / ``**kwargs``, names and attributes starting with ``_``, any other
    attribute, ``str.format`` and ``'%'`` text formatting, assigning to a helper's name.
Bounds: every evaluated node is a step (``max_steps``) and a clock deadline (``max_seconds``) is
    checked as it goes; numbers above 10,000 bits, exponents above 1000 and results above 100,000
    items are refused before they are built.

Errors: :class:`UnsafeExpressionError` for text outside the language (found before anything runs),
:class:`ExpressionError` for failures while running (unknown variable with a "did you mean", wrong
types, division by zero, limits). Nothing else escapes :meth:`SafeEnvironment.evaluate` / ``execute``.
Author documentation: ``docs/expressions.md``.
"""

from __future__ import annotations

import ast
import copy
import difflib
import functools
import math
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import BasePythonScriptEngineEnvironment

from engine import _expression_functions as fn
from engine._expression_functions import ALLOWED_FUNCTIONS, HelperFunction
from engine.clock import Clock
from engine.errors import CarePathError, ExpressionError, Problem, UnsafeExpressionError

__all__ = [
    "ALLOWED_FUNCTIONS",
    "HelperFunction",
    "SafeEnvironment",
    "check_expression",
    "check_script",
    "make_script_engine",
]

MAX_SOURCE_CHARS = 20_000
_DEADLINE_EVERY = 64  # steps between clock reads: time.monotonic() per node would dominate the cost

_EXPRESSION_NODES: frozenset[type] = frozenset({
    ast.Expression, ast.Constant, ast.Name, ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.Compare,
    ast.IfExp, ast.Subscript, ast.Slice, ast.List, ast.Tuple, ast.Dict, ast.Set, ast.JoinedStr,
    ast.FormattedValue, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.comprehension,
    ast.Call, ast.keyword, ast.Attribute, ast.NamedExpr,
})  # fmt: skip
_SCRIPT_NODES = _EXPRESSION_NODES | {
    ast.Module, ast.Assign, ast.AugAssign, ast.If, ast.For, ast.While, ast.Break, ast.Continue,
    ast.Pass, ast.Expr, ast.Delete,
}  # fmt: skip
# Checked through their parent node (they carry no position of their own).
_PARTS = (ast.operator, ast.unaryop, ast.boolop, ast.cmpop, ast.expr_context)
_OPERATORS: dict[type, str] = {
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**",
}  # fmt: skip
_COMPARE: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b, ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b, ast.Gt: lambda a, b: a > b, ast.GtE: lambda a, b: a >= b,
    ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
    ast.Is: lambda a, b: a is b, ast.IsNot: lambda a, b: a is not b,
}  # fmt: skip
_REFUSED_NAMES: dict[type, str] = {
    ast.Import: "import", ast.ImportFrom: "import", ast.FunctionDef: "function definition ('def')",
    ast.AsyncFunctionDef: "function definition ('def')", ast.Lambda: "lambda",
    ast.ClassDef: "class definition", ast.Global: "global", ast.Nonlocal: "nonlocal",
    ast.With: "'with'", ast.Try: "'try'", ast.Raise: "'raise'", ast.Assert: "'assert'",
    ast.Yield: "'yield'", ast.YieldFrom: "'yield'", ast.Await: "'await'",
    ast.AnnAssign: "annotated assignment", ast.Starred: "'*' unpacking",
}  # fmt: skip
_CONVERSIONS: dict[int, Callable[[Any], str]] = {ord("s"): str, ord("r"): repr, ord("a"): ascii}
_CONSTANT_TYPES = (str, int, float, bool, type(None))
_ITERABLE_TYPES = (list, tuple, str, dict, set)
_SUBSCRIPTABLE_TYPES = (list, tuple, str, dict)


def _where(node: ast.AST) -> tuple[int | None, int | None]:
    line = getattr(node, "lineno", None)
    col = getattr(node, "col_offset", None)
    return line, None if col is None else col + 1


def _problem(node: ast.AST, message: str, code: str) -> Problem:
    line, column = _where(node)
    if line is not None:
        message = f"{message} (line {line}, col {column})"
    return Problem(message=message, line=line, column=column, code=code)


def _refuse(node: ast.AST, message: str) -> UnsafeExpressionError:
    problem = _problem(node, message, "unsafe-expression")
    return UnsafeExpressionError(problem.message, [problem])


def _fail(node: ast.AST, message: str, code: str = "expression-failed") -> ExpressionError:
    problem = _problem(node, message, code)
    return ExpressionError(problem.message, [problem])


# --- static check ---------------------------------------------------------------------------------


class _Checker:
    """Collects every construct outside the language, without running anything."""

    def __init__(self, tree: ast.AST, script: bool) -> None:
        self.script = script
        self.problems: list[Problem] = []
        self.method_calls = {
            id(n.func)
            for n in ast.walk(tree)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
        }
        self.in_loop = {
            id(inner)
            for loop in ast.walk(tree)
            if isinstance(loop, ast.For | ast.While)
            for stmt in loop.body
            for inner in ast.walk(stmt)
        }

    def run(self, tree: ast.AST) -> list[Problem]:
        allowed = _SCRIPT_NODES if self.script else _EXPRESSION_NODES
        pending = [tree]  # iterative: a deeply nested tree must not exhaust the Python stack
        while pending:
            node = pending.pop()
            if isinstance(node, _PARTS):
                continue
            if type(node) not in allowed:
                # Report the construct once, not also its insides (the alias of an import, ...).
                what = _REFUSED_NAMES.get(type(node), f"'{type(node).__name__}'")
                self.add(node, f"{what} is not allowed" + ("" if self.script else " in an expression"))
                continue
            pending.extend(ast.iter_child_nodes(node))
            check = getattr(self, "check_" + type(node).__name__, None)
            if check is not None:
                check(node)
        return sorted(self.problems, key=lambda p: (p.line or 0, p.column or 0))

    def add(self, node: ast.AST, message: str) -> None:
        self.problems.append(_problem(node, message, "unsafe-expression"))

    def check_Name(self, node: ast.Name) -> None:
        if node.id.startswith("_"):
            self.add(node, f"the name '{node.id}' is not allowed (names may not start with '_')")
        elif not isinstance(node.ctx, ast.Load) and node.id in ALLOWED_FUNCTIONS:
            self.add(node, f"'{node.id}' is the name of a helper function; choose another variable name")

    def check_Attribute(self, node: ast.Attribute) -> None:
        # Point at the attribute's name, not at the start of the value before the dot.
        at = ast.Name(
            id=node.attr, lineno=node.lineno, col_offset=(node.end_col_offset or 0) - len(node.attr)
        )
        names = fn.READING_METHOD_NAMES | (fn.CHANGING_METHOD_NAMES if self.script else frozenset())
        if node.attr.startswith("_"):
            self.add(at, f"attribute access '{node.attr}' is not allowed")
        elif node.attr == "format":
            self.add(at, "'.format' is not allowed; use an f-string")
        elif id(node) not in self.method_calls:
            self.add(at, f"attribute access '{node.attr}' is not allowed")
        elif node.attr not in names:
            where = "" if node.attr not in fn.CHANGING_METHOD_NAMES else " (it changes data: only in scripts)"
            self.add(at, f"the method '{node.attr}' is not allowed{where}")

    def check_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Name) and node.func.id not in ALLOWED_FUNCTIONS:
            self.add(node, f"calling '{node.func.id}' is not allowed")
        elif not isinstance(node.func, ast.Name | ast.Attribute):
            self.add(node, "only helper functions and allowed methods can be called")
        for keyword in node.keywords:
            if keyword.arg is None:
                self.add(keyword, "'**' unpacking is not allowed")
            elif keyword.arg.startswith("_"):
                self.add(keyword, f"the argument name '{keyword.arg}' is not allowed")

    def check_Constant(self, node: ast.Constant) -> None:
        if not isinstance(node.value, _CONSTANT_TYPES):
            self.add(node, f"{type(node.value).__name__} literals are not allowed")

    def check_BinOp(self, node: ast.BinOp) -> None:
        if type(node.op) not in _OPERATORS:
            self.add(node, f"the operator {type(node.op).__name__} is not allowed")

    check_AugAssign = check_BinOp

    def check_UnaryOp(self, node: ast.UnaryOp) -> None:
        if isinstance(node.op, ast.Invert):
            self.add(node, "the operator '~' is not allowed")

    def check_Compare(self, node: ast.Compare) -> None:
        for op, right in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.Is | ast.IsNot) and not (
                isinstance(right, ast.Constant) and right.value is None
            ):
                self.add(node, "'is' / 'is not' may only compare with None; use == or !=")

    def check_Dict(self, node: ast.Dict) -> None:
        if any(key is None for key in node.keys):
            self.add(node, "'**' unpacking is not allowed")

    def check_comprehension(self, node: ast.comprehension) -> None:
        if node.is_async:
            self.add(node.target, "'async for' is not allowed")

    def check_FormattedValue(self, node: ast.FormattedValue) -> None:
        spec = node.format_spec
        if spec is None:
            return
        parts = spec.values if isinstance(spec, ast.JoinedStr) else [spec]
        if not all(isinstance(p, ast.Constant) and isinstance(p.value, str) for p in parts):
            self.add(node, "f-string format specifications must be fixed text")
        elif len("".join(str(p.value) for p in parts if isinstance(p, ast.Constant))) > 12:
            self.add(node, "the f-string format specification is too long")

    def check_Expr(self, node: ast.Expr) -> None:
        if not isinstance(node.value, ast.Call):
            self.add(node, "a statement must be an assignment or a call; did you mean '=' or an 'if'?")

    def check_Break(self, node: ast.stmt) -> None:
        if id(node) not in self.in_loop:
            self.add(node, f"'{type(node).__name__.lower()}' outside a loop")

    check_Continue = check_Break

    def check_Assign(self, node: ast.Assign) -> None:
        for target in node.targets:
            self._check_target(target, allow_unpack=True)

    def check_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            self._check_target(target, allow_unpack=False)

    def check_For(self, node: ast.For) -> None:
        self._check_target(node.target, allow_unpack=True)

    def _check_target(self, target: ast.expr, *, allow_unpack: bool) -> None:
        if allow_unpack and isinstance(target, ast.Tuple | ast.List):
            for element in target.elts:
                self._check_target(element, allow_unpack=True)
        elif isinstance(target, ast.Subscript) and isinstance(target.slice, ast.Slice):
            self.add(target, "assigning to or deleting a slice is not allowed")
        elif not isinstance(target, ast.Name | ast.Subscript):
            self.add(target, "you can only assign to a variable or to an item like d['key']")


@functools.lru_cache(maxsize=512)
def _parse(source: str, mode: str) -> tuple[ast.AST | None, tuple[Problem, ...]]:
    """Parse and check once per distinct text: the same conditions are evaluated again and again."""
    if len(source) > MAX_SOURCE_CHARS:
        return None, (
            Problem(message=f"longer than {MAX_SOURCE_CHARS} characters", code="unsafe-expression"),
        )
    try:
        tree = ast.parse(source.strip() if mode == "eval" else source, mode=mode)
    except SyntaxError as exc:
        line, col = exc.lineno, max(exc.offset or 1, 1)
        text = f"syntax error: {exc.msg}" + (f" (line {line}, col {col})" if line else "")
        return None, (Problem(message=text, line=line, column=col, code="syntax-error"),)
    except (ValueError, RecursionError, MemoryError) as exc:
        return None, (Problem(message=f"cannot be parsed: {exc}", code="syntax-error"),)
    return tree, tuple(_Checker(tree, script=mode == "exec").run(tree))


def check_expression(source: str) -> list[Problem]:
    """Statically check a condition or timer expression; ``[]`` when it is in the language."""
    return list(_parse(source, "eval")[1])


def check_script(source: str) -> list[Problem]:
    """Statically check a script (script task, pre- or post-script); ``[]`` when it is in the language."""
    return list(_parse(source, "exec")[1])


def _checked(source: str, mode: str) -> ast.AST:
    if not isinstance(source, str):
        raise UnsafeExpressionError(f"expected the text of an expression, got {type(source).__name__}")
    tree, problems = _parse(source, mode)
    if problems or tree is None:
        kind = "expression" if mode == "eval" else "script"
        raise UnsafeExpressionError(f"the {kind} is outside the safe language: {source!r}", list(problems))
    return tree


# --- interpreter ----------------------------------------------------------------------------------


class _Break(Exception):
    """Internal: unwinds to the enclosing loop (the checker refuses 'break' outside loops)."""


class _Continue(Exception):
    """Internal: unwinds to the enclosing loop's next item."""


def _describe(exc: Exception) -> str:
    if isinstance(exc, ZeroDivisionError):
        return "division by zero"
    if isinstance(exc, KeyError):
        return f"the key {exc.args[0]!r} is not there" if exc.args else "a key is not there"
    if isinstance(exc, IndexError):
        return "the position is out of range"
    if isinstance(exc, RecursionError):
        return "the expression is nested too deeply"
    if isinstance(exc, MemoryError):
        return "the expression ran out of memory"
    if isinstance(exc, TypeError | ValueError | OverflowError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class _Interpreter:
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
        """Count a newly built value against the evaluation's memory budget; returns it."""
        self.built += fn.built_size(value)
        if self.built > fn.MAX_BUILT:
            raise _fail(
                node, f"the expression built more than {fn.MAX_BUILT} items or characters", "size-limit"
            )
        return value

    def tick(self, node: ast.AST) -> None:
        self.steps += 1
        if self.steps > self.max_steps:
            raise _fail(
                node, f"the expression exceeded its step limit ({self.max_steps} steps)", "step-limit"
            )
        if self.steps % _DEADLINE_EVERY == 0 and time.monotonic() > self.deadline:
            raise _fail(node, "the expression exceeded its step limit (time limit reached)", "step-limit")

    def eval(self, node: ast.AST) -> Any:
        self.tick(node)
        try:
            return _EVALUATORS[type(node)](self, node)
        except (CarePathError, _Break, _Continue):
            raise
        except Exception as exc:  # every other failure becomes an ExpressionError at this node
            raise _fail(node, _describe(exc)) from None

    def run(self, statements: list[ast.stmt]) -> None:
        for statement in statements:
            self.tick(statement)
            try:
                _EXECUTORS[type(statement)](self, statement)
            except (CarePathError, _Break, _Continue):
                raise
            except Exception as exc:
                raise _fail(statement, _describe(exc)) from None

    # expressions

    def constant(self, node: ast.Constant) -> Any:
        return node.value

    def name(self, node: ast.Name) -> Any:
        for scope in reversed(self.scopes):
            if node.id in scope:
                value = scope[node.id]
                if callable(value):  # only the helpers may be called, and only by name
                    raise _refuse(node, f"the variable '{node.id}' holds a function")
                return value
        known = {key for scope in self.scopes for key in scope if isinstance(key, str)}
        close = difflib.get_close_matches(node.id, sorted(known), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise _fail(node, f"unknown variable '{node.id}'{hint}", "unknown-variable")

    def binop(self, node: ast.BinOp) -> Any:
        result = fn.arithmetic(_OPERATORS[type(node.op)], self.eval(node.left), self.eval(node.right))
        return self.account(node, result)

    def unaryop(self, node: ast.UnaryOp) -> Any:
        value = self.eval(node.operand)
        if isinstance(node.op, ast.Not):
            return not value
        if not isinstance(value, int | float):
            raise TypeError(f"bad operand type for unary minus or plus: '{type(value).__name__}'")
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
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True

    def ifexp(self, node: ast.IfExp) -> Any:
        return self.eval(node.body) if self.eval(node.test) else self.eval(node.orelse)

    def subscript(self, node: ast.Subscript) -> Any:
        container = self.eval(node.value)
        if type(container) not in _SUBSCRIPTABLE_TYPES:
            raise TypeError(f"a {type(container).__name__} cannot be indexed")
        return container[self.index(node.slice)]

    def index(self, node: ast.expr) -> Any:
        if not isinstance(node, ast.Slice):
            return self.eval(node)
        parts = [None if p is None else self.eval(p) for p in (node.lower, node.upper, node.step)]
        if not all(p is None or isinstance(p, int) for p in parts):
            raise TypeError("slice positions must be whole numbers")
        return slice(*parts)

    def sequence(self, node: ast.List | ast.Tuple | ast.Set) -> Any:
        items = [self.eval(element) for element in node.elts]
        return {ast.List: list, ast.Tuple: tuple, ast.Set: set}[type(node)](items)

    def dict_(self, node: ast.Dict) -> dict[Any, Any]:
        return {self.eval(k): self.eval(v) for k, v in zip(node.keys, node.values, strict=True) if k}

    def fstring(self, node: ast.JoinedStr) -> str:
        text = "".join(str(self.eval(part)) for part in node.values)
        if len(text) > fn.MAX_TEXT:
            raise ValueError(f"the text would be longer than {fn.MAX_TEXT} characters")
        return self.account(node, text)

    def formatted(self, node: ast.FormattedValue) -> str:
        value = self.eval(node.value)
        fn.check_text_size(value)
        convert: Callable[[Any], Any] | None = _CONVERSIONS.get(node.conversion)
        if convert is not None:
            value = convert(value)
        spec = "" if node.format_spec is None else self.eval(node.format_spec)
        return format(value, spec)

    def comprehension(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp) -> Any:
        scope: dict[str, Any] = {}
        self.scopes.append(scope)
        try:
            if isinstance(node, ast.DictComp):
                return {k: v for k, v in self.generate(node.generators, scope, (node.key, node.value))}
            items = [item for (item,) in self.generate(node.generators, scope, (node.elt,))]
        finally:
            self.scopes.pop()
        # Generator expressions are built eagerly: a generator object would be a value with frames.
        return set(items) if isinstance(node, ast.SetComp) else items

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
        if type(iterable) not in _ITERABLE_TYPES:
            raise TypeError(f"cannot loop over a {type(iterable).__name__}")
        return list(iterable)  # a snapshot: changing the data inside the loop does not extend it

    def call(self, node: ast.Call) -> Any:
        args = [self.eval(arg) for arg in node.args]
        kwargs = {str(k.arg): self.eval(k.value) for k in node.keywords}
        if isinstance(node.func, ast.Name):
            helper = ALLOWED_FUNCTIONS.get(node.func.id)
            if helper is None:
                raise _refuse(node, f"calling '{node.func.id}' is not allowed")
            return self.account(node, helper.call(self.clock, args, kwargs))
        assert isinstance(node.func, ast.Attribute)  # guaranteed by the checker
        target = self.eval(node.func.value)
        if not fn.method_allowed(target, node.func.attr, allow_changes=self.script):
            raise _refuse(node, f"the method '{node.func.attr}' is not available on {type(target).__name__}")
        for arg in args:  # list.extend(big) grows the list by big's size
            self.account(node, arg)
        return self.account(node, fn.call_method(target, node.func.attr, tuple(args), kwargs))

    def walrus(self, node: ast.NamedExpr) -> Any:
        value = self.eval(node.value)
        self.frame[node.target.id] = value
        return value

    def attribute(self, node: ast.Attribute) -> Any:
        raise _refuse(node, f"attribute access '{node.attr}' is not allowed")

    # statements

    def bind(self, target: ast.expr, value: Any, scope: dict[str, Any]) -> None:
        if isinstance(target, ast.Name):
            scope[target.id] = value
        elif isinstance(target, ast.Subscript):
            container = self.eval(target.value)
            if type(container) not in (list, dict):
                raise TypeError(f"items of a {type(container).__name__} cannot be assigned")
            container[self.eval(target.slice)] = value
        else:
            assert isinstance(target, ast.Tuple | ast.List)  # guaranteed by the checker
            if type(value) not in _ITERABLE_TYPES or len(value) != len(target.elts):
                raise ValueError(f"expected {len(target.elts)} values to unpack")
            for element, item in zip(target.elts, list(value), strict=True):
                self.bind(element, item, scope)

    def assign(self, node: ast.Assign) -> None:
        value = self.eval(node.value)
        for target in node.targets:
            self.bind(target, value, self.frame)

    def augassign(self, node: ast.AugAssign) -> None:
        symbol = _OPERATORS[type(node.op)]
        if isinstance(node.target, ast.Name):
            current = self.name(ast.Name(id=node.target.id, lineno=node.lineno, col_offset=node.col_offset))
            self.frame[node.target.id] = fn.arithmetic(symbol, current, self.eval(node.value))
            return
        assert isinstance(node.target, ast.Subscript)  # guaranteed by the checker
        container = self.eval(node.target.value)
        if type(container) not in (list, dict):
            raise TypeError(f"items of a {type(container).__name__} cannot be assigned")
        key = self.eval(node.target.slice)
        container[key] = fn.arithmetic(symbol, container[key], self.eval(node.value))

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
                    raise _fail(target, f"unknown variable '{target.id}'", "unknown-variable")
                del self.frame[target.id]
            else:
                assert isinstance(target, ast.Subscript)  # guaranteed by the checker
                container = self.eval(target.value)
                if type(container) not in (list, dict):
                    raise TypeError(f"items of a {type(container).__name__} cannot be deleted")
                del container[self.eval(target.slice)]

    def break_(self, node: ast.Break) -> None:
        raise _Break

    def continue_(self, node: ast.Continue) -> None:
        raise _Continue

    def pass_(self, node: ast.stmt) -> None:
        pass

    def expr(self, node: ast.Expr) -> None:
        self.eval(node.value)


_EVALUATORS: dict[type, Callable[[_Interpreter, Any], Any]] = {
    ast.Constant: _Interpreter.constant, ast.Name: _Interpreter.name, ast.BinOp: _Interpreter.binop,
    ast.UnaryOp: _Interpreter.unaryop, ast.BoolOp: _Interpreter.boolop, ast.Compare: _Interpreter.compare,
    ast.IfExp: _Interpreter.ifexp, ast.Subscript: _Interpreter.subscript, ast.List: _Interpreter.sequence,
    ast.Tuple: _Interpreter.sequence, ast.Set: _Interpreter.sequence, ast.Dict: _Interpreter.dict_,
    ast.JoinedStr: _Interpreter.fstring, ast.FormattedValue: _Interpreter.formatted,
    ast.ListComp: _Interpreter.comprehension, ast.SetComp: _Interpreter.comprehension,
    ast.GeneratorExp: _Interpreter.comprehension, ast.DictComp: _Interpreter.comprehension,
    ast.Call: _Interpreter.call, ast.NamedExpr: _Interpreter.walrus, ast.Attribute: _Interpreter.attribute,
}  # fmt: skip
_EXECUTORS: dict[type, Callable[[_Interpreter, Any], None]] = {
    ast.Assign: _Interpreter.assign, ast.AugAssign: _Interpreter.augassign, ast.If: _Interpreter.if_,
    ast.For: _Interpreter.for_, ast.While: _Interpreter.while_, ast.Delete: _Interpreter.delete,
    ast.Break: _Interpreter.break_, ast.Continue: _Interpreter.continue_, ast.Pass: _Interpreter.pass_,
    ast.Expr: _Interpreter.expr,
}  # fmt: skip


# --- task data stays JSON -----------------------------------------------------------------------


_JSON_SCALARS = frozenset({str, int, bool, type(None)})


def _as_json(value: Any, variable: str, inside: frozenset[int] = frozenset()) -> Any:
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
        return [_as_json(item, variable, inside) for item in value]
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise ExpressionError(
                f"'{variable}' is a dict with keys that are not text; task data needs text keys"
            )
        return {key: _as_json(item, variable, inside) for key, item in value.items()}
    hint = " (use sorted(...) to store a set)" if isinstance(value, set | frozenset) else ""
    raise ExpressionError(
        f"'{variable}' would hold a {type(value).__name__}, which task data cannot store{hint}"
    )


def _unchanged(before: Any, after: Any) -> bool:
    try:
        return type(before) is type(after) and bool(before == after)
    except RecursionError:
        return False


# --- the SpiffWorkflow environment --------------------------------------------------------------


class SafeEnvironment(BasePythonScriptEngineEnvironment):
    """A SpiffWorkflow script environment that runs only the safe language (module docstring)."""

    def __init__(self, clock: Clock, *, max_steps: int = 10_000, max_seconds: float = 0.25) -> None:
        if max_steps < 1 or max_seconds <= 0:
            raise ValueError("max_steps and max_seconds must be positive")
        super().__init__({})
        self.clock = clock
        self.limits = (max_steps, max_seconds)

    def evaluate(self, expression: str, context: dict[str, Any],
                 external_context: dict[str, Any] | None = None) -> Any:  # fmt: skip
        """Evaluate a condition or timer expression against task data; the data is not changed.

        Raises:
            UnsafeExpressionError: the expression is outside the safe language.
            ExpressionError: it failed while running (unknown variable, types, limits).
        """
        tree = _checked(expression, "eval")
        assert isinstance(tree, ast.Expression)
        interpreter = _Interpreter(
            [external_context or {}, context], {}, self.clock, self.limits, script=False
        )
        return _guarded(lambda: interpreter.eval(tree.body))

    def execute(self, script: str, context: dict[str, Any],
                external_context: dict[str, Any] | None = None) -> bool:  # fmt: skip
        """Run a script on a copy of the task data; apply its changes only if all of it succeeds.

        Raises:
            UnsafeExpressionError: the script is outside the safe language.
            ExpressionError: it failed while running, or left a value task data cannot store.
        """
        tree = _checked(script, "exec")
        assert isinstance(tree, ast.Module)
        variables = _guarded(lambda: copy.deepcopy(context))
        interpreter = _Interpreter([external_context or {}], variables, self.clock, self.limits, script=True)
        _guarded(lambda: interpreter.run(tree.body))
        changes = {
            key: _guarded(lambda key=key, value=value: _as_json(value, key))  # type: ignore[misc]
            for key, value in variables.items()
            if key not in context or not _unchanged(context[key], value)
        }
        for key in [key for key in context if key not in variables]:
            del context[key]
        context.update(changes)
        return True

    def call_service(self, context: dict[str, Any], **kwargs: Any) -> Any:
        """Raises ExpressionError always: the engine handles service tasks elsewhere."""
        raise ExpressionError("service tasks are not handled by the expression environment")


def _guarded(action: Callable[[], Any]) -> Any:
    """Run ``action`` so that only ExpressionError / UnsafeExpressionError can leave it."""
    try:
        return action()
    except CarePathError:
        raise
    except RecursionError:
        raise ExpressionError("the expression or its data is nested too deeply") from None
    except Exception as exc:  # noqa: BLE001 - the documented contract: nothing raw escapes
        raise ExpressionError(_describe(exc)) from None


def make_script_engine(clock: Clock) -> PythonScriptEngine:
    """A SpiffWorkflow script engine that runs diagrams' expressions in a :class:`SafeEnvironment`."""
    return PythonScriptEngine(environment=SafeEnvironment(clock))
