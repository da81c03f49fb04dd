"""How bench/state_dictionary.py builds a preset dictionary for stored states (engine.db.stored_state):
pieces common to many states, without what is unique or a patient's, the most common last."""

from __future__ import annotations

import zlib

from bench_modules import load_bench  # tests/ is on sys.path

builder = load_bench("state_dictionary", "bench_state_dictionary")

TASK = '"{id}":{{"children":[],"last_state_change":{at},"state":64,"task_spec":"{spec}"}},'


def _state(n: int, spec: str, patient: str) -> str:
    tasks = "".join(
        TASK.format(id=f"0c6b1f2e-1d2c-4b5a-8e9f-{n:06d}{k:06d}", at=f"17960419{n:02d}.{k}77", spec=spec)
        for k in range(3)
    )
    data = f'"data":{{"patient_ref":"{patient}","diagnosis_date":"2026-01-15"}},'
    return '{"tasks":{' + tasks + "}," + data + '"typename":"BpmnWorkflow"}'


def test_a_dictionary_keeps_the_shared_pieces_and_nothing_unique_or_a_patients() -> None:
    journeys = [[_state(n, "triage", "SYN-7") for n in range(10)], [_state(n, "review", "MRN-1") for n in range(10)]]
    built = builder.build(journeys, size=4096).decode()
    assert '"state":64,"task_spec":"triage"},' in built and '"state":64,"task_spec":"review"},' in built
    assert "0c6b1f2e" not in built and "1796041" not in built  # task ids and times: unique, nothing to share
    assert "SYN-" not in built and "2026-01" not in built  # the journeys' own patients and dates
    assert len(built.encode()) <= 4096
    # It helps: a new state of the same shape compresses smaller with it than without.
    fresh = _state(42, "triage", "MRN-9").encode()
    primed = zlib.compressobj(6, zdict=built.encode())
    assert len(primed.compress(fresh) + primed.flush()) < len(zlib.compress(fresh, 6))


def test_a_dictionary_stays_within_its_size_and_puts_the_most_common_last() -> None:
    common = [_state(n, "triage", "SYN") for n in range(10)]
    rare = [_state(n, "survey", "SYN") for n in range(2)]
    built = builder.build([common + rare], size=4096).decode()
    assert built.rindex("triage") > built.rindex("survey")  # zlib reaches the end with the shortest distances
    assert len(builder.build([common + rare], size=40)) <= 40
