"""The helpers and value methods that diagram expressions may call, and the size guards around them.

Private to :mod:`engine.expressions`, which documents the language. Everything here works on
JSON-shaped values only (task data must stay JSON): dates are ``'YYYY-MM-DD'`` strings.

Failures are raised as :class:`Refusal` / :class:`TypeRefusal` with a message meant for a clinical
author and worded without the values given (they may be a patient's: the message ends up in an
incident and the event trail); the interpreter adds the line and column and turns them into
:class:`engine.errors.ExpressionError`. Python's own ``ValueError`` texts quote their input
(``int('8 - cannot sleep')``), so the interpreter shows those by their type alone.
"""

from __future__ import annotations

import math
import operator
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import date as _date
from types import MappingProxyType
from typing import Any

from engine.calendar import add_months as add_calendar_months
from engine.clock import Clock


class Refusal(ValueError):
    """A helper's or the interpreter's own refusal of a value, worded without it."""


class TypeRefusal(TypeError):
    """A helper's or the interpreter's own refusal of a value's type, worded without the value."""


# Limits on the size of what one operation may build, so that `'a' * 10**9`, `9**9**9` or doubling a
# list in a loop fails at once instead of exhausting the server's memory.
MAX_ITEMS = 100_000
MAX_EXPONENT = 1000
MAX_INT_BITS = 10_000
MAX_TEXT = 1_000_000
MAX_ROUND_DIGITS = 100
MAX_INT_DIGITS = 3000  # decimal digits of a whole number converted from or to text (10,000 bits: 3,011)
MAX_FORMAT_WIDTH = 1000  # the largest width or precision an f-string format specification may ask for
# Per-operation caps alone would let 2,000 loop turns each build 100,000 items, so everything one
# evaluation builds (items of new lists, characters of new text) is also counted against one budget.
MAX_BUILT = 1_000_000
_CONTAINERS = (list, tuple, dict, set, frozenset)
_SIZED_KINDS = (str, *_CONTAINERS)


def built_size(value: Any, budget: int = MAX_BUILT) -> int:
    """How much a new value counts against MAX_BUILT: its characters, or its items and everything
    inside them, a shared reference counted at every visit.

    ``[[[]] * 60000] * 60000`` holds 120,000 references, but comparing, printing or storing it visits
    3.6 billion items: that is what it costs, and what it counts. Each distinct container is measured
    once (the walk costs what the value's memory does, not what it counts); the measure stops at the
    first container over ``budget``, and a container inside itself counts as over any budget.
    """
    if isinstance(value, str):
        return len(value)
    if not isinstance(value, _CONTAINERS):
        return 1
    sizes: dict[int, int] = {}  # id -> size of the containers measured so far
    on_path: set[int] = set()
    stack: list[tuple[Any, dict[int, Any] | None]] = [(value, None)]
    while stack:
        item, inside = stack.pop()
        if inside is not None:  # everything inside is measured: measure the container itself
            size = _items_size(item, inside, sizes)
            sizes[id(item)] = size
            on_path.discard(id(item))
            if size > budget:
                return size
            continue
        if id(item) in sizes:
            continue
        if id(item) in on_path:
            return budget + 1
        on_path.add(id(item))
        children = list(item.values()) if isinstance(item, dict) else item
        distinct = dict(zip(map(id, children), children, strict=True))  # C speed, however many references
        stack.append((item, distinct))
        stack.extend(
            (child, None) for key, child in distinct.items() if isinstance(child, _CONTAINERS) and key not in sizes
        )
    return sizes[id(value)]


def _items_size(item: Any, distinct: dict[int, Any], sizes: dict[int, int]) -> int:
    """Items of ``item`` plus, for each reference to text or a container, its size again."""
    children = list(item.values()) if isinstance(item, dict) else item
    sized = {key: child for key, child in distinct.items() if isinstance(child, _SIZED_KINDS)}
    if not sized:  # only numbers, booleans, None: the common case
        return len(children)
    visits = Counter(map(id, children))  # C speed
    total = len(children)
    for key, child in sized.items():
        extra = max(len(child), 1) - 1 if isinstance(child, str) else sizes.get(key, 0)
        total += visits[key] * extra
    return total


@dataclass(frozen=True)
class HelperFunction:
    """A function expressions may call by name. ``uses_clock`` helpers get the clock first."""

    function: Callable[..., Any]
    summary: str
    uses_clock: bool = False

    def call(self, clock: Clock, args: list[Any], kwargs: dict[str, Any]) -> Any:
        if self.uses_clock:
            return self.function(clock, *args, **kwargs)
        return self.function(*args, **kwargs)


# --- size guards ------------------------------------------------------------------------------


def check_text_size(value: Any) -> None:
    """Refuse to render ``value`` as text when the text would exceed MAX_TEXT characters.

    A list of 100,000 references to one 100,000-character string is cheap to build but its ``str()``
    is 10**10 characters, so the rendered size is estimated (without rendering) first: a shared
    reference renders in full at every visit; only a container inside itself renders as ``[...]``.
    """
    check_int_digits(value, "str")
    budget = MAX_TEXT
    stack: list[tuple[Any, bool]] = [(value, False)]
    inside: set[int] = set()  # the containers on the path being rendered
    while stack:
        item, leaving = stack.pop()
        if leaving:
            inside.discard(id(item))
            continue
        budget -= len(item) if isinstance(item, str) else 8
        if budget < 0:
            raise Refusal(f"the text would be longer than {MAX_TEXT} characters")
        if isinstance(item, list | tuple | set | frozenset | dict) and id(item) not in inside:
            inside.add(id(item))
            stack.append((item, True))
            stack.extend((child, False) for child in (item.items() if isinstance(item, dict) else item))


def check_int_digits(value: Any, helper: str) -> None:
    """Refuse to turn a whole number of more than MAX_INT_DIGITS digits into text (Python refuses
    past 4,300 with advice about ``sys``; an author gets this instead)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        raise Refusal(f"{helper}: the number has more than {MAX_INT_DIGITS} digits")


def check_format_spec(spec: str) -> None:
    """Refuse a format specification whose width or precision exceeds MAX_FORMAT_WIDTH
    (``f'{x:>999999999}'`` builds a gigabyte of spaces)."""
    numbers = [int(digits) for digits in re.findall(r"\d+", spec)]
    if any(number > MAX_FORMAT_WIDTH for number in numbers):
        raise Refusal(f"the f-string format specification asks for more than {MAX_FORMAT_WIDTH} characters")


def check_items(count: int) -> None:
    """Refuse (:class:`Refusal`) a result of more than MAX_ITEMS items or characters."""
    if count > MAX_ITEMS:
        raise Refusal(f"the result would have more than {MAX_ITEMS} items or characters")


def _check_int(value: Any) -> None:
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise Refusal(f"the number is too large (more than {MAX_INT_DIGITS} digits)")


_ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": operator.mod,
    "**": operator.pow,
}
_SEQUENCES = (str, list, tuple)


def arithmetic(symbol: str, left: Any, right: Any) -> Any:
    """Apply a binary operator after checking that its result stays small."""
    _check_int(left)
    _check_int(right)
    if symbol == "*":
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, _SEQUENCES) and isinstance(times, int):
                check_items(len(seq) * max(times, 0))
    elif symbol == "+" and isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
        check_items(len(left) + len(right))
    elif symbol == "%" and isinstance(left, str):
        # printf-style formatting can request huge widths ('%*d'); f-strings are the supported way.
        raise TypeRefusal("'%' formatting of text is not allowed; use an f-string")
    elif symbol == "**" and isinstance(right, int | float):
        if right > MAX_EXPONENT:
            raise Refusal(f"the exponent is larger than {MAX_EXPONENT}")
        if isinstance(left, int) and isinstance(right, int) and left.bit_length() * right > MAX_INT_BITS:
            raise Refusal("the number is too large")
    result = _ARITHMETIC[symbol](left, right)
    if isinstance(result, complex):  # (-8) ** 0.5
        raise Refusal("the result is not a real number")
    _check_int(result)  # two 10,000-bit operands multiply to 20,000 bits
    return result


# --- dates (ISO-8601 strings in, ISO-8601 strings out) --------------------------------------------


def _parse_date(value: Any, helper: str) -> _date:
    if not isinstance(value, str):
        raise TypeRefusal(f"{helper} expects a date like '2024-08-31', got {type(value).__name__}")
    try:
        if len(value) <= 10:
            return _date.fromisoformat(value)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise Refusal(f"{helper} expects a date like '2024-08-31', got text that is not one") from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.date()


def _whole(value: Any, helper: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeRefusal(f"{helper} expects a whole number, got {type(value).__name__}")
    return value


def _shift_months(start: _date, months: int) -> _date:
    # Clamped to the month's end: 31 Aug + 18 months is 28 Feb, not 3 March (engine.calendar).
    try:
        return add_calendar_months(start, months)
    except ValueError:
        raise Refusal("the date would be outside the years 1 to 9999") from None


def today(clock: Clock) -> str:
    return clock.now().astimezone(UTC).date().isoformat()


def now(clock: Clock) -> str:
    return clock.now().astimezone(UTC).isoformat()


def make_date(year: Any, month: Any, day: Any) -> str:
    return _date(_whole(year, "date"), _whole(month, "date"), _whole(day, "date")).isoformat()


def add_days(day: Any, days: Any) -> str:
    try:
        return (_parse_date(day, "add_days") + timedelta(days=_whole(days, "add_days"))).isoformat()
    except OverflowError:
        raise Refusal("the date would be outside the years 1 to 9999") from None


def add_months(day: Any, months: Any) -> str:
    return _shift_months(_parse_date(day, "add_months"), _whole(months, "add_months")).isoformat()


def add_years(day: Any, years: Any) -> str:
    return _shift_months(_parse_date(day, "add_years"), 12 * _whole(years, "add_years")).isoformat()


def days_between(start: Any, end: Any) -> int:
    return (_parse_date(end, "days_between") - _parse_date(start, "days_between")).days


def _months_from(start: _date, end: _date) -> int:
    """The largest n with add_months(start, n) <= end (start <= end), so it agrees with add_months."""
    months = (end.year - start.year) * 12 + end.month - start.month
    if months > 0 and _shift_months(start, months) > end:
        months -= 1
    return months


def months_between(start: Any, end: Any) -> int:
    first, second = _parse_date(start, "months_between"), _parse_date(end, "months_between")
    return _months_from(first, second) if first <= second else -_months_from(second, first)


def age_on(birth_date: Any, on_date: Any) -> int:
    born, on = _parse_date(birth_date, "age_on"), _parse_date(on_date, "age_on")
    if on < born:
        raise Refusal("age_on: the date is before the birth date")
    return _months_from(born, on) // 12


# --- wrapped builtins ------------------------------------------------------------------------------


def safe_round(number: Any, ndigits: Any = None) -> Any:
    # round(5, -10**9) computes 10**(10**9) before answering.
    if ndigits is not None and (not isinstance(ndigits, int) or abs(ndigits) > MAX_ROUND_DIGITS):
        raise Refusal(f"round: the number of digits must be a whole number up to {MAX_ROUND_DIGITS}")
    return round(number, ndigits)


def safe_sum(values: Any) -> Any:
    # Only numbers: sum() with a list start value copies quadratically.
    items = list(values)
    if not all(isinstance(v, int | float) for v in items):
        raise TypeRefusal("sum adds numbers only")
    total = sum(items)
    if isinstance(total, float) and math.isinf(total):
        raise Refusal("the sum is too large")
    return total


def safe_str(value: Any = "") -> str:
    check_text_size(value)
    return str(value)


def safe_int(value: Any = 0, *args: Any, **kwargs: Any) -> int:
    # int('9' * 5000) failed with Python's advice to call sys.set_int_max_str_digits.
    if isinstance(value, str) and sum(character.isdigit() for character in value) > MAX_INT_DIGITS:
        raise Refusal(f"int: the text has more than {MAX_INT_DIGITS} digits")
    try:
        result = int(value, *args, **kwargs)
    except ValueError:  # Python's text quotes the value
        raise Refusal("int: the text is not a whole number") from None
    _check_int(result)
    return result


def safe_float(value: Any = 0.0) -> float:
    try:
        return float(value)
    except ValueError:  # Python's text quotes the value
        raise Refusal("float: the text is not a number") from None


ALLOWED_FUNCTIONS: Mapping[str, HelperFunction] = MappingProxyType(
    {
        "len": HelperFunction(len, "number of items in a list, keys in a dict, or characters in text"),
        "min": HelperFunction(min, "smallest of a list, or of several values"),
        "max": HelperFunction(max, "largest of a list, or of several values"),
        "sum": HelperFunction(safe_sum, "total of a list of numbers"),
        "any": HelperFunction(any, "True if any item is true"),
        "all": HelperFunction(all, "True if every item is true"),
        "abs": HelperFunction(abs, "absolute value"),
        "round": HelperFunction(safe_round, "round(x) or round(x, digits)"),
        "sorted": HelperFunction(sorted, "a sorted copy of a list; sorted(xs, reverse=True)"),
        "int": HelperFunction(safe_int, "convert to a whole number"),
        "float": HelperFunction(safe_float, "convert to a decimal number"),
        "str": HelperFunction(safe_str, "convert to text"),
        "bool": HelperFunction(bool, "convert to True/False"),
        "list": HelperFunction(list, "convert to a list"),
        "dict": HelperFunction(dict, "build a dict"),
        "set": HelperFunction(set, "build a set (not storable in task data: convert with sorted())"),
        "today": HelperFunction(today, "today's date in UTC, 'YYYY-MM-DD'", uses_clock=True),
        "now": HelperFunction(now, "the current time in UTC, ISO-8601", uses_clock=True),
        "date": HelperFunction(make_date, "date(2024, 8, 31) -> '2024-08-31'"),
        "add_days": HelperFunction(add_days, "add_days('2024-08-31', 10) -> '2024-09-10'"),
        "add_months": HelperFunction(add_months, "add_months('2024-08-31', 18) -> '2026-02-28' (clamped)"),
        "add_years": HelperFunction(add_years, "add_years('2024-02-29', 1) -> '2025-02-28' (clamped)"),
        "days_between": HelperFunction(days_between, "days_between(a, b) -> days from a to b"),
        "months_between": HelperFunction(months_between, "whole months from a to b"),
        "age_on": HelperFunction(age_on, "age_on(birth_date, on_date) -> age in whole years"),
    }
)


# --- methods on values -----------------------------------------------------------------------------

# Exact types only: task data is JSON, so subclasses with surprising methods never occur legitimately.
READING_METHODS: Mapping[type, frozenset[str]] = MappingProxyType(
    {
        str: frozenset({"lower", "upper", "strip", "lstrip", "rstrip", "startswith", "endswith"})
        | frozenset({"split", "join", "replace"}),
        dict: frozenset({"get", "keys", "values", "items"}),
        list: frozenset({"count", "index"}),
        tuple: frozenset({"count", "index"}),
    }
)
CHANGING_METHODS: Mapping[type, frozenset[str]] = MappingProxyType(
    {
        list: frozenset({"append", "extend", "insert", "pop", "remove"}),
        dict: frozenset({"update", "pop", "setdefault"}),
        set: frozenset({"add", "discard"}),
    }
)
READING_METHOD_NAMES = frozenset().union(*READING_METHODS.values())
CHANGING_METHOD_NAMES = frozenset().union(*CHANGING_METHODS.values())


def _guard_join(text: str, args: tuple[Any, ...]) -> None:
    parts = list(args[0]) if args else []
    check_items(sum(len(p) if isinstance(p, str) else 0 for p in parts) + len(text) * len(parts))


def _guard_replace(text: str, args: tuple[Any, ...]) -> None:
    if len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        check_items(len(text) + text.count(args[0]) * max(len(args[1]) - len(args[0]), 0))


def _guard_extend(items: list[Any], args: tuple[Any, ...]) -> None:
    if args and isinstance(args[0], list | tuple | str | dict | set):
        check_items(len(items) + len(args[0]))


_GUARDS: dict[tuple[type, str], Callable[[Any, tuple[Any, ...]], None]] = {
    (str, "join"): _guard_join,
    (str, "replace"): _guard_replace,
    (list, "extend"): _guard_extend,
}


def method_allowed(value: Any, name: str, *, allow_changes: bool) -> bool:
    if name in READING_METHODS.get(type(value), frozenset()):
        return True
    return allow_changes and name in CHANGING_METHODS.get(type(value), frozenset())


def call_method(value: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Call a method already allowed by :func:`method_allowed`."""
    guard = _GUARDS.get((type(value), name))
    if guard is not None:
        guard(value, args)
    result = getattr(value, name)(*args, **kwargs)
    if name in ("keys", "values", "items"):
        # Plain lists: views are not JSON, and `d.keys().mapping` would reach the dict behind them.
        return list(result)
    return result
