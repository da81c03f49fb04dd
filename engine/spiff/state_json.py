"""Reading and writing the JSON of instance states and pathway specs, on every step.

orjson decodes and encodes them several times faster than the standard library, which was a tenth
of a cold step's cost (bench/engine.py). The text it writes is plain JSON that the standard library
reads, and it reads what the standard library wrote; where the two differ, the standard library is
used instead:

* Integers past 64 bits, and nesting deeper than 255 levels: orjson refuses them; the standard
  library writes and reads them.
* ``NaN`` and ``Infinity``: the standard library writes these non-JSON words and orjson refuses to
  read them (states written before orjson was used might hold them). orjson would write them as
  ``null``; task data cannot hold them (the API refuses them in requests, expressions refuse to
  store them), so none reaches it.
* Objects SpiffWorkflow's encoder converts (datetimes, timedeltas, sets, its own classes) are handed
  to that encoder as before (orjson's passthrough options), so they are stored in the same form.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

__all__ = ["dumps", "loads"]

_OPTIONS = (
    orjson.OPT_NON_STR_KEYS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def loads(text: str | bytes) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)  # raises the standard library's error for text that is not JSON at all


def dumps(value: Any, default: Callable[[Any], Any]) -> str:
    """Compact JSON; ``default`` converts what JSON has no type for (and raises TypeError otherwise)."""
    try:
        return orjson.dumps(value, default=default, option=_OPTIONS).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":"), default=default)
