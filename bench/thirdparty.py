"""Census: what CarePath's gate and engine make of third-party BPMN diagrams (issue 12's figures).

Given a folder (e.g. ``/tmp/thirdparty``, one sub-folder per source repository), every ``*.bpmn``
below it goes through what an author's diagram goes through:

1. ``carepath validate FILE``: :func:`engine.pathways.validation.validate_paths` with the command's
   arguments (the library folder, the rule set names of the rules folder). The file may call the
   diagrams in its folder tree, as the command allows.
2. Deploy into a throwaway SQLite database through the engine facade (``CarePath.catalog``, the path
   of ``POST /v1/pathways``): the file, the form schemas (``*.json``) beside it, and the diagrams of
   its folder tree that it calls (transitively) as shared sub-pathways.
3. Start each deployed pathway on a manual clock (its first step): it *runs* when every instance
   reaches a waiting point or completes without an incident.

Each file is checked in a worker process with a bound on address space; the parent gives each file
``--seconds`` and, past that or when the worker dies, records a hang or a crash and starts a new
worker for the next file, so a hostile diagram cannot stall the census.

A file is classified as ``runs``, ``incident`` (deployed, but the first step stopped with an
incident), ``refused`` (with the first error's category), ``crash`` (an exception the engine did not
map, or a dead worker) or ``hang``. Consistency checks: validate and deploy must agree (both refuse
or both accept); every refusal must carry ``file:line: element-id``; an incident for text outside the
safe expression language (``UnsafeExpressionError``) is a gate miss -- the gate reads the same
text. Prints JSON: counts per
outcome and refusal category, per source folder, disagreements, unlocated refusals, gate misses,
crashes and hangs,
and the command that reproduces it (``--details FILE`` writes every file's record).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import select
import shlex
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lxml import etree  # noqa: E402

from engine import CarePath, CarePathError, DiagramError, ManualClock, Settings  # noqa: E402
from engine.errors import Problem  # noqa: E402
from engine.pathways.validation import errors_in, format_problems, rule_set_names, validate_paths  # noqa: E402

BPMN = "{http://www.omg.org/spec/BPMN/20100524/MODEL}"
PATIENT = "MRN-CENSUS-1"
# Refusals whose text names no element: the file is not yet a BPMN diagram (or cannot be read).
NO_ELEMENT_CODES = {"xml-syntax", "not-bpmn", "encoding", "dtd", "not-found"}
# A refusal's category: its code, and for codes that cover several causes, the cause in words.
SERVICE_CAUSES = (
    ("java class", "Java class"),
    ("delegate", "Java delegate"),
    ("external task", "Camunda external task"),
    ("connector", "Camunda connector"),
    ("camunda 8", "Camunda 8 job"),
    ("expression", "Java expression"),
)


# --- the worker: one file at a time -----------------------------------------------------------------


def _problems(found: list[Problem]) -> list[dict[str, Any]]:
    return [
        {
            "code": p.code,
            "file": p.file,
            "line": p.line,
            "element": p.element,
            "severity": p.severity,
            "message": p.message,
            "text": format_problems([p]),
        }
        for p in found
    ]


def _called_ids(tree: Any) -> set[str]:
    return {e.get("calledElement") for e in tree.iter(f"{BPMN}callActivity") if e.get("calledElement")}


def _bundle(path: Path) -> dict[str, bytes]:
    """What an author would upload for ``path``: the file, the form schemas beside it, and the
    diagrams of its folder tree defining the processes it calls (transitively), under ``called/``."""
    files = {path.name: path.read_bytes()}
    files.update({p.name: p.read_bytes() for p in sorted(path.parent.glob("*.json")) if p.is_file()})
    defines: dict[str, Path] = {}
    trees: dict[Path, Any] = {}
    for other in sorted(path.parent.rglob("*.bpmn")):
        try:
            trees[other] = etree.parse(str(other), etree.XMLParser(resolve_entities=False, no_network=True))
        except (etree.XMLSyntaxError, OSError):
            continue
        for process in trees[other].iter(f"{BPMN}process"):
            defines.setdefault(process.get("id") or "", other)
    wanted, seen = list(_called_ids(trees[path])) if path in trees else [], {path}
    while wanted:
        target = defines.get(wanted.pop())
        if target is None or target in seen:
            continue
        seen.add(target)
        files[f"called/{target.relative_to(path.parent).as_posix()}"] = target.read_bytes()
        wanted += _called_ids(trees[target])
    return files


def check_file(path: Path, app: CarePath, library: Path, rules: Path) -> dict[str, Any]:
    """Validate, deploy and start one diagram; exceptions other than the engine's are the caller's."""
    record: dict[str, Any] = {}
    found = validate_paths([path], pathways_root=library, known_rule_sets=rule_set_names(rules))
    record["validate"] = {"errors": _problems(errors_in(found)), "warnings": len(found) - len(errors_in(found))}
    try:
        deployed = app.catalog.deploy_upload(_bundle(path), "author:census")
    except DiagramError as exc:
        record["deploy"] = {"errors": _problems(errors_in(exc.problems) or exc.problems), "message": exc.message}
        return record
    except CarePathError as exc:  # a mapped refusal that is not a diagram's (e.g. a bad upload name)
        record["deploy"] = {"errors": _problems(exc.problems or [Problem(exc.message)]), "message": exc.message}
        return record
    record["deploy"] = {"pathways": [v.pathway_id for v in deployed], "errors": []}
    record["starts"] = []
    for version in deployed:
        try:
            view = app.instances.start(version.pathway_id, PATIENT, "system:census")
        except CarePathError as exc:
            record["starts"].append({"pathway": version.pathway_id, "refused": f"{type(exc).__name__}: {exc.message}"})
            continue
        record["starts"].append(
            {
                "pathway": version.pathway_id,
                "status": view.status,
                "incident": view.incident,
                "ready": len(view.ready_tasks),
                "due": view.next_due_at,
            }
        )
    return record


def worker(limit_mb: int) -> None:
    """Read file paths from stdin, write one JSON record per line; exceptions become ``raised``."""
    resource.setrlimit(resource.RLIMIT_AS, (limit_mb * 1024 * 1024, limit_mb * 1024 * 1024))
    work = Path(tempfile.mkdtemp(prefix="census-"))
    library, rules = work / "library", ROOT / "rules"
    library.mkdir()
    # Four eyes off: the census deploys each diagram and runs its first step at once (one person, no server).
    app = CarePath(
        Settings(database_url=f"sqlite:///{work}/db.sqlite3", pathways_dir=library, rules_dir=rules, four_eyes=False),
        ManualClock(datetime(2026, 1, 15, 9, 0, tzinfo=UTC)),
        upgrade=True,
    )
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        path = Path(line.rstrip("\n"))
        try:
            record = check_file(path, app, library, rules)
        except BaseException as exc:  # noqa: BLE001 - an unmapped exception is what the census reports
            record = {"raised": f"{type(exc).__name__}: {exc}"[:400]}
        print(json.dumps(record, default=str), flush=True)


# --- the parent: bounds, classification, figures ---------------------------------------------------


class Worker:
    """A worker process; :meth:`check` gives it one file and waits at most ``seconds``."""

    def __init__(self, limit_mb: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--worker", "--memory-mb", str(limit_mb)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
            env={**os.environ, "TZ": "UTC"},
        )
        if self._read(120.0) is None:
            raise RuntimeError("the census worker did not start")

    def _read(self, seconds: float) -> dict[str, Any] | None:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], seconds)
        if not ready:
            return None
        line = self.process.stdout.readline()
        return json.loads(line) if line else {"died": self.process.wait()}

    def check(self, path: Path, seconds: float) -> dict[str, Any] | None:
        """The file's record, ``{"died": code}`` if the worker died, None if it overran."""
        assert self.process.stdin is not None
        self.process.stdin.write(f"{path}\n")
        self.process.stdin.flush()
        return self._read(seconds)

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()


def category(problem: dict[str, Any]) -> str:
    """A refusal's category: the problem's code, with the cause for codes that cover several."""
    code = problem.get("code") or "uncoded"
    if code == "service-no-operator":
        text = problem["message"].lower()
        return next((f"{code} ({cause})" for word, cause in SERVICE_CAUSES if word in text), code)
    return str(code)


def located(problem: dict[str, Any]) -> bool:
    """Whether a refusal names ``file:line: element-id`` (file and line only for text that is not BPMN)."""
    if not problem.get("file") or problem.get("line") is None:
        return False
    return bool(problem.get("element")) or problem.get("code") in NO_ELEMENT_CODES


def classify(record: dict[str, Any]) -> tuple[str, str | None]:
    """(outcome, refusal or incident category)."""
    if "hang" in record:
        return "hang", None
    if "raised" in record or "died" in record:
        return "crash", record.get("raised", f"worker died ({record.get('died')})").split(":")[0]
    refusal = (record["validate"]["errors"] or record["deploy"]["errors"] or [None])[0]
    if refusal is not None:
        return "refused", category(refusal)
    starts = record.get("starts", [])
    if not starts:
        return "deployed-nothing", None
    for start in starts:
        if "refused" in start:
            return "start-refused", start["refused"].split(":")[0]
        if start.get("incident"):
            incident = start["incident"]
            return "incident", str(incident.get("kind") or "incident")
    return "runs", None


def figures(records: dict[str, dict[str, Any]], root: Path) -> dict[str, Any]:
    outcomes: Counter[str] = Counter()
    categories: Counter[str] = Counter()
    incidents: Counter[str] = Counter()
    per_source: dict[str, Counter[str]] = defaultdict(Counter)
    disagreements, unlocated, crashes, hangs, stopped, misses = [], [], [], [], [], []
    validates = deploys = 0
    for name, record in sorted(records.items()):
        outcome, kind = classify(record)
        outcomes[outcome] += 1
        source = Path(name).parts[0]
        per_source[source]["files"] += 1
        per_source[source][outcome] += 1
        if outcome == "refused":
            categories[kind or "?"] += 1
        elif outcome in ("incident", "start-refused"):
            incidents[kind or "?"] += 1
            stopped += [
                {"file": name, "pathway": s["pathway"], **(s.get("incident") or {"refused": s.get("refused")})}
                for s in record["starts"]
                if s.get("incident") or s.get("refused")
            ]
            misses += [
                {"file": name, "element": s["incident"].get("element"), "message": s["incident"].get("message")}
                for s in record["starts"]
                if (s.get("incident") or {}).get("kind") == "UnsafeExpressionError"
            ]
        elif outcome == "crash":
            crashes.append({"file": name, "error": record.get("raised") or f"worker died ({record.get('died')})"})
        elif outcome == "hang":
            hangs.append(name)
        if "validate" not in record or "deploy" not in record:
            continue
        valid, deployed = not record["validate"]["errors"], not record["deploy"]["errors"]
        validates += valid
        deploys += deployed
        per_source[source]["validates"] += valid
        per_source[source]["deploys"] += deployed
        if valid != deployed:
            side = record["deploy"] if valid else record["validate"]
            disagreements.append(
                {
                    "file": name,
                    "validates": valid,
                    "deploys": deployed,
                    "refusal": side["errors"][0]["text"] if side["errors"] else None,
                }
            )
        for stage in ("validate", "deploy"):
            for problem in record[stage]["errors"]:
                if not located(problem):
                    unlocated.append({"file": name, "stage": stage, "problem": problem["text"]})
    return {
        "files": len(records),
        "validate": validates,
        "deploy": deploys,
        "outcomes": dict(outcomes.most_common()),
        "refusal_categories": dict(categories.most_common()),
        "incident_categories": dict(incidents.most_common()),
        "per_source": {s: dict(c) for s, c in sorted(per_source.items())},
        "incidents": stopped,
        "disagreements": disagreements,
        "unlocated_refusals": unlocated,
        "gate_misses": misses,
        "crashes": crashes,
        "hangs": hangs,
    }


def diagrams(root: Path) -> Iterator[Path]:
    yield from sorted(p for p in root.rglob("*.bpmn") if p.is_file())


def census(root: Path, seconds: float, memory_mb: int) -> dict[str, dict[str, Any]]:
    records: dict[str, dict[str, Any]] = {}
    current: Worker | None = None
    for path in diagrams(root):
        current = current or Worker(memory_mb)
        started = time.monotonic()
        record = current.check(path, seconds)
        if record is None:
            record = {"hang": round(time.monotonic() - started, 1)}
        if record.get("hang") or "died" in record:
            current.stop()
            current = None
        records[path.relative_to(root).as_posix()] = record
    if current is not None:
        current.stop()
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=Path("/tmp/thirdparty"))
    parser.add_argument("--seconds", type=float, default=20.0, help="per file, validate + deploy + start")
    parser.add_argument("--memory-mb", type=int, default=1024, help="the worker's address space")
    parser.add_argument("--details", type=Path, help="write every file's record (JSON) here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.memory_mb)
        return
    records = census(args.folder.resolve(), args.seconds, args.memory_mb)
    if args.details:
        args.details.write_text(json.dumps(records, indent=1, default=str))
    report = figures(records, args.folder)
    report["command"] = shlex.join([sys.executable, "bench/thirdparty.py", *sys.argv[1:]])
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
