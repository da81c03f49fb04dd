"""The static half of the safe expression language: parsing and the whitelist check.

See engine/expressions.py for the language; nothing here runs author text.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Callable
from typing import Any

from engine.errors import ExpressionError, Problem, UnsafeExpressionError
from engine.expressions import functions as fn
from engine.expressions.functions import ALLOWED_FUNCTIONS

MAX_SOURCE_CHARS = 20_000
DEADLINE_EVERY = 64  # steps between clock reads: time.monotonic() per node would dominate the cost

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
OPERATORS: dict[type, str] = {
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**",
}  # fmt: skip
COMPARE: dict[type, Callable[[Any, Any], bool]] = {
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
CONVERSIONS: dict[int, Callable[[Any], str]] = {ord("s"): str, ord("r"): repr, ord("a"): ascii}
_CONSTANT_TYPES = (str, int, float, bool, type(None))
ITERABLE_TYPES = (list, tuple, str, dict, set)
SUBSCRIPTABLE_TYPES = (list, tuple, str, dict)


def _where(node: ast.AST) -> tuple[int | None, int | None]:
    line = getattr(node, "lineno", None)
    col = getattr(node, "col_offset", None)
    return line, None if col is None else col + 1


def _problem(node: ast.AST, message: str, code: str) -> Problem:
    line, column = _where(node)
    if line is not None:
        message = f"{message} (line {line}, col {column})"
    return Problem(message=message, line=line, column=column, code=code)


def refuse(node: ast.AST, message: str) -> UnsafeExpressionError:
    problem = _problem(node, message, "unsafe-expression")
    return UnsafeExpressionError(problem.message, [problem])


def fail(node: ast.AST, message: str, code: str = "expression-failed") -> ExpressionError:
    problem = _problem(node, message, code)
    return ExpressionError(problem.message, [problem])


# --- static check ---------------------------------------------------------------------------------


class _Checker:
    """Collects every construct outside the language, without running anything."""

    def __init__(self, tree: ast.AST, script: bool) -> None:
        self.script = script
        self.problems: list[Problem] = []
        self.method_calls = {
            id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
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
        at = ast.Name(id=node.attr, lineno=node.lineno, col_offset=(node.end_col_offset or 0) - len(node.attr))
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
        if type(node.op) not in OPERATORS:
            self.add(node, f"the operator {type(node.op).__name__} is not allowed")

    check_AugAssign = check_BinOp

    def check_UnaryOp(self, node: ast.UnaryOp) -> None:
        if isinstance(node.op, ast.Invert):
            self.add(node, "the operator '~' is not allowed")

    def check_Compare(self, node: ast.Compare) -> None:
        for op, right in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.Is | ast.IsNot) and not (isinstance(right, ast.Constant) and right.value is None):
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
        else:
            try:
                fn.check_format_spec("".join(str(p.value) for p in parts if isinstance(p, ast.Constant)))
            except ValueError as exc:
                self.add(node, str(exc))

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


# --- constant parts past the evaluator's size limits -------------------------------------------------


def _constant_problems(tree: ast.AST) -> list[Problem]:
    """Where a part of the text made of constants alone (``10**10**10``, ``(10**100)**1000``,
    ``'a' * 10**9``, ``[0] * 10**6``) passes a size limit the evaluator applies when it runs
    (:func:`functions.arithmetic`: exponents over 1000, numbers over 10,000 bits, results over 100,000
    items or characters): that part fails every time it runs, whatever the data. Numbers are folded with
    that same function, which checks its operands before computing, so nothing large is built here;
    text and list literals are never built, only their lengths counted. Anything else that fails
    (division by zero, a type the evaluator refuses) is left to run time, where it may be a branch never
    taken. Problems have the code ``size-limit``."""
    order: list[ast.AST] = []
    pending = [tree]  # iterative, as the checker: children are folded before their parents (reversed)
    while pending:
        node = pending.pop()
        order.append(node)
        pending.extend(ast.iter_child_nodes(node))
    numbers: dict[int, int | float] = {}
    lengths: dict[int, int] = {}  # text, list and tuple literals (and their repetitions): how long
    problems: list[Problem] = []
    for node in reversed(order):
        try:
            _fold(node, numbers, lengths)
        except fn.Refusal as exc:
            problems.append(_problem(node, f"{exc}; it would fail every time it runs", "size-limit"))
        except (ArithmeticError, TypeError, ValueError):
            pass  # left to run time (see above)
    return problems


def _fold(node: ast.AST, numbers: dict[int, int | float], lengths: dict[int, int]) -> None:
    """Record ``node``'s value (a number) or length (a sequence) when its parts are known.

    Raises:
        functions.Refusal: the evaluator's size limits refuse it.
    """
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        numbers[id(node)] = node.value
    elif isinstance(node, ast.Constant) and isinstance(node.value, str):
        lengths[id(node)] = len(node.value)
    elif isinstance(node, ast.List | ast.Tuple) and isinstance(node.ctx, ast.Load):
        lengths[id(node)] = len(node.elts)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd) and id(node.operand) in numbers:
        value = numbers[id(node.operand)]
        numbers[id(node)] = -value if isinstance(node.op, ast.USub) else +value
    elif isinstance(node, ast.BinOp) and type(node.op) in OPERATORS:
        symbol, left, right = OPERATORS[type(node.op)], id(node.left), id(node.right)
        if left in numbers and right in numbers:
            numbers[id(node)] = fn.arithmetic(symbol, numbers[left], numbers[right])
        elif symbol == "**" and right in numbers:
            fn.arithmetic(symbol, 1, numbers[right])  # the exponent alone is refused, whatever it raises
        elif symbol == "*" and (left in lengths) != (right in lengths):
            length, times = (
                (lengths[left], numbers.get(right)) if left in lengths else (lengths[right], numbers.get(left))
            )
            if isinstance(times, int):
                fn.check_items(length * max(times, 0))
                lengths[id(node)] = length * max(times, 0)
        elif symbol == "+" and left in lengths and right in lengths:
            fn.check_items(lengths[left] + lengths[right])
            lengths[id(node)] = lengths[left] + lengths[right]


@functools.lru_cache(maxsize=512)
def _parse(source: str, mode: str) -> tuple[ast.AST | None, tuple[Problem, ...], tuple[Problem, ...]]:
    """Parse and check once per distinct text: the same conditions are evaluated again and again. The
    tree, the problems that keep it from running (outside the language), and those of its constant parts
    (:func:`_constant_problems`: they fail when run, as the evaluator refuses them)."""
    if len(source) > MAX_SOURCE_CHARS:
        return None, (Problem(message=f"longer than {MAX_SOURCE_CHARS} characters", code="unsafe-expression"),), ()
    try:
        tree = ast.parse(source.strip() if mode == "eval" else source, mode=mode)
    except SyntaxError as exc:
        line, col = exc.lineno, max(exc.offset or 1, 1)
        text = f"syntax error: {exc.msg}" + (f" (line {line}, col {col})" if line else "")
        return None, (Problem(message=text, line=line, column=col, code="syntax-error"),), ()
    except (ValueError, RecursionError, MemoryError) as exc:
        return None, (Problem(message=f"cannot be parsed: {exc}", code="syntax-error"),), ()
    return tree, tuple(_Checker(tree, script=mode == "exec").run(tree)), tuple(_constant_problems(tree))


def _all_problems(source: str, mode: str) -> list[Problem]:
    _tree, outside, too_large = _parse(source, mode)
    return sorted([*outside, *too_large], key=lambda p: (p.line or 0, p.column or 0))


def check_expression(source: str) -> list[Problem]:
    """Statically check a condition or timer expression; ``[]`` when it is in the language and no
    constant part of it is past the evaluator's size limits (code ``size-limit``)."""
    return _all_problems(source, "eval")


def check_script(source: str) -> list[Problem]:
    """Statically check a script (script task, pre- or post-script); ``[]`` when it is in the language
    and no constant part of it is past the evaluator's size limits (code ``size-limit``)."""
    return _all_problems(source, "exec")


def checked(source: str, mode: str) -> ast.AST:
    if not isinstance(source, str):
        raise UnsafeExpressionError(f"expected the text of an expression, got {type(source).__name__}")
    tree, problems, _too_large = _parse(source, mode)  # a constant part too large fails when run, as before
    if problems or tree is None:
        # Say which constructs (with their line and column), not the text: an incident shows this.
        kind = "expression" if mode == "eval" else "script"
        reasons = "; ".join(dict.fromkeys(p.message for p in problems)) or "it cannot be parsed"
        raise UnsafeExpressionError(f"the {kind} is outside the safe language: {reasons}", list(problems))
    return tree
