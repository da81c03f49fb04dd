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
Author documentation: ``docs/expressions.md``. The checker, interpreter and helper functions are
this package's own modules; the names here (``__all__``) are its public surface.

May import: SpiffWorkflow's script-engine environment, ``engine.calendar``, ``engine.clock`` and
``engine.errors``. Never the database, pathways or instances.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Callable
from typing import Any

from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import BasePythonScriptEngineEnvironment

from engine.clock import Clock
from engine.errors import CarePathError, ExpressionError
from engine.expressions.checker import (
    check_expression,
    check_script,
    checked,
)
from engine.expressions.functions import ALLOWED_FUNCTIONS, HelperFunction
from engine.expressions.interpreter import (
    Interpreter,
    as_json,
    describe,
    unchanged,
)

__all__ = [
    "ALLOWED_FUNCTIONS",
    "HelperFunction",
    "SafeEnvironment",
    "check_expression",
    "check_script",
    "make_script_engine",
]

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
        tree = checked(expression, "eval")
        assert isinstance(tree, ast.Expression)
        interpreter = Interpreter([external_context or {}, context], {}, self.clock, self.limits, script=False)
        return _guarded(lambda: interpreter.eval(tree.body))

    def execute(self, script: str, context: dict[str, Any],
                external_context: dict[str, Any] | None = None) -> bool:  # fmt: skip
        """Run a script on a copy of the task data; apply its changes only if all of it succeeds.

        Raises:
            UnsafeExpressionError: the script is outside the safe language.
            ExpressionError: it failed while running, or left a value task data cannot store.
        """
        tree = checked(script, "exec")
        assert isinstance(tree, ast.Module)
        variables = _guarded(lambda: copy.deepcopy(context))
        interpreter = Interpreter([external_context or {}], variables, self.clock, self.limits, script=True)
        _guarded(lambda: interpreter.run(tree.body))
        changes = {
            key: _guarded(lambda key=key, value=value: as_json(value, key))  # type: ignore[misc]
            for key, value in variables.items()
            if key not in context or not unchanged(context[key], value)
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
        raise ExpressionError(describe(exc)) from None


def make_script_engine(clock: Clock) -> PythonScriptEngine:
    """A SpiffWorkflow script engine that runs diagrams' expressions in a :class:`SafeEnvironment`."""
    return PythonScriptEngine(environment=SafeEnvironment(clock))
