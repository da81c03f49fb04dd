"""Benchmark: stored workflow states with the preset zlib dictionary against zlib alone.

A stored state is a zlib stream of the state's JSON text (``engine.db.stored_state``). Each one is
compressed on its own, so zlib starts every state knowing nothing, though every state of every pathway
repeats the same key names, task spec names and structure. A preset dictionary (RFC 1950's FDICT) gives
it those to start from. This script:

* runs the full journey of each bundled pathway (``tests/pathways_bundled``: diagnosis to the end of
  the pathway, every parallel part, message and timer) and keeps the text of every state stored;
* reports, per pathway, the largest and the mean stored size with the shipped dictionary
  (``engine/db/state_dictionary_1.txt``, marker 0x02) and with zlib alone at the same level (marker
  0x01, the previous format), and the CPU time of compressing and inflating the largest state both
  ways (the median of 200 runs);
* with ``--held-out``, also the sizes each pathway gets from a dictionary built without its own states
  (how a pathway an author adds would fare);
* with ``--write PATH``, writes a dictionary built from these journeys to PATH. The shipped one is
  frozen: states stored with it can only be read with it, byte for byte (its SHA-256 is checked when
  the engine loads it), so a new dictionary is a new file, a new marker and a new reader.

How a dictionary is built (:func:`build`): every state's text without its task ids and timestamps
(random and unique: nothing to share), split after each ``],`` and ``},``; each piece of at least 8
bytes that holds none of the journeys' own values (synthetic patients, teams, dates) and is found in
at least two sampled states is scored by (states it is in) x (its length), the best kept up to 32 KiB
(zlib's window), and the most common placed last, where zlib reaches them with the shortest
distances.

Run from the repository root: ``.venv/bin/python bench/state_dictionary.py`` (``--held-out``,
``--write PATH``, ``--pathways NAME ...``). Prints JSON, with the command that reproduces it.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import statistics
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the bundled-pathway journeys the tests run

import machine  # noqa: E402  (bench/machine.py, beside this script)
from pathways_bundled.journey import PATHWAYS, REPO  # noqa: E402
from pathways_bundled.journeys import SITES, Options, full_journey  # noqa: E402

from engine import CarePath, ManualClock, Settings  # noqa: E402
from engine.db import stored_state  # noqa: E402
from engine.instances import store  # noqa: E402

START = "2026-01-15T09:00:00+00:00"  # as the journey tests start
WINDOW = 32 * 1024  # zlib's: a dictionary longer than this is cut to its last 32 KiB
SAMPLES = 40  # states per pathway the pieces are counted in
_TASK_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TIMESTAMP = re.compile(r"\d{10}\.\d+")  # last_state_change: seconds since 1970 with a fraction
_PIECE_END = re.compile(r"(?<=[\]}],)")
# The journeys' own values (synthetic patients, teams and dates): what real states hold instead differs.
_JOURNEY_DATA = re.compile(r"SYN-|Synthetic|\d{4}-\d{2}-\d{2}")


def journey_states(site: str, folder: Path) -> list[str]:
    """The text of every state stored during ``site``'s full journey, in order."""
    from datetime import datetime

    folder.mkdir(parents=True, exist_ok=True)
    settings = Settings(
        database_url=f"sqlite:///{folder / 'states.sqlite3'}",
        pathways_dir=PATHWAYS,
        rules_dir=REPO / "rules",
        four_eyes=False,
    )
    app = CarePath(settings, ManualClock(datetime.fromisoformat(START)), upgrade=True)
    app.catalog.sync_library()
    texts: list[str] = []
    original = store.encode_state

    def kept(text: str) -> bytes:
        texts.append(text)
        return original(text)

    store.encode_state = kept  # type: ignore[assignment]
    try:
        full_journey(app, app.clock, SITES[site], f"SYN-DICT-{site}", Options())  # type: ignore[arg-type]
    finally:
        store.encode_state = original  # type: ignore[assignment]
        app.close()
    return texts


def build(states: list[list[str]], size: int = WINDOW) -> bytes:
    """A dictionary of at most ``size`` bytes from each journey's states (see the module docstring)."""
    found: Counter[str] = Counter()
    for journey in states:
        for text in journey[:: max(1, len(journey) // SAMPLES)]:
            plain = _TIMESTAMP.sub("", _TASK_ID.sub("", text))
            found.update(
                {piece for piece in _PIECE_END.split(plain) if len(piece) >= 8 and not _JOURNEY_DATA.search(piece)}
            )
    scored = sorted(
        ((count, piece) for piece, count in found.items() if count >= 2),
        key=lambda item: (item[0] * len(item[1].encode()), item[1]),
        reverse=True,
    )
    kept, total = [], 0
    for count, piece in scored:
        length = len(piece.encode())
        if total + length <= size:
            kept.append((count, piece))
            total += length
    kept.sort(key=lambda item: (item[0], item[1]))  # the most common last
    return "".join(piece for _, piece in kept).encode()


def _zlib_alone(text: str) -> bytes:
    return bytes((stored_state.ZLIB,)) + zlib.compress(text.encode(), stored_state.LEVEL)


def _with(dictionary: bytes) -> Callable[[str], bytes]:
    def encode(text: str) -> bytes:
        deflater = zlib.compressobj(stored_state.LEVEL, zdict=dictionary)
        return b"\x02" + deflater.compress(text.encode()) + deflater.flush()

    return encode


def _sizes(texts: list[str], encode: Callable[[str], bytes]) -> dict[str, float]:
    sizes = [len(encode(text)) for text in texts]
    return {"largest": max(sizes), "mean": round(statistics.fmean(sizes), 1)}


def _cpu_ms(action: Callable[[], Any], runs: int = 200) -> float:
    times = []
    for _ in range(runs):
        started = time.process_time()
        action()
        times.append(time.process_time() - started)
    return round(statistics.median(times) * 1000, 4)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--held-out", action="store_true", help="also each pathway with a dictionary built without it")
    parser.add_argument("--write", type=Path, help="write a dictionary built from these journeys here")
    parser.add_argument(
        "--pathways", nargs="+", choices=sorted(SITES), default=list(SITES), help="these pathways' journeys only"
    )
    args = parser.parse_args(argv)
    command = ".venv/bin/python bench/state_dictionary.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    with tempfile.TemporaryDirectory() as folder:
        states = {site: journey_states(site, Path(folder) / site) for site in args.pathways}
    shipped = stored_state.DICTIONARY
    report: dict[str, Any] = {
        "command": command,
        "host": machine.describe(),
        "dictionary": {"file": "engine/db/state_dictionary_1.txt", "bytes": len(shipped)},
        "level": stored_state.LEVEL,
        "pathways": {},
    }
    for site, texts in states.items():
        largest = max(texts, key=len)
        packed = stored_state.encode_state(largest)
        entry: dict[str, Any] = {
            "states": len(texts),
            "largest_text_bytes": len(largest.encode()),
            "stored_bytes": {
                "with_dictionary": _sizes(texts, stored_state.encode_state),
                "zlib_alone": _sizes(texts, _zlib_alone),
            },
            "cpu_ms_largest": {
                "compress_with_dictionary": _cpu_ms(lambda t=largest: stored_state.encode_state(t)),
                "compress_zlib_alone": _cpu_ms(lambda t=largest: _zlib_alone(t)),
                "inflate_with_dictionary": _cpu_ms(lambda p=packed: stored_state.decode_state(p)),
                "inflate_zlib_alone": _cpu_ms(lambda p=_zlib_alone(largest): stored_state.decode_state(p)),
            },
        }
        if args.held_out:
            others = build([journey for other, journey in states.items() if other != site])
            entry["stored_bytes"]["dictionary_without_this_pathway"] = _sizes(texts, _with(others))
        sizes = entry["stored_bytes"]
        entry["largest_ratio"] = round(sizes["with_dictionary"]["largest"] / sizes["zlib_alone"]["largest"], 3)
        report["pathways"][site] = entry
    if args.write is not None:
        args.write.write_bytes(build(list(states.values())))
        report["written"] = str(args.write)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
