"""A diagram in words: each process's steps in the order the flows reach them, who does each (its lane),
what starts or ends it, and where each leads (with the flow's label, a gateway's answer).

The authors' pages draw a diagram with bpmn-js; this is its text alternative (WCAG 2.2, 1.1.1: a screen
reader gets nothing from the drawing) and the reading of a pathway for a clinical reviewer who does not read
BPMN. It reads the XML only (no SpiffWorkflow spec is built, nothing runs), so the check page can give it
for a diagram that does not pass; its size is bounded by :data:`MAX_STEPS` whatever the file holds.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from engine.pathways.diagrams import BPMN_NS, FLOW_NODES, NSMAP, SCOPES, Diagram

__all__ = ["MAX_STEPS", "ProcessOutline", "Step", "outline"]

MAX_STEPS = 2000  # per diagram: the bundled pathways have about 120; past this the outline says it stopped
_TEXT = 200  # characters of a name, label or timer expression shown

_CONTAINERS = frozenset(SCOPES[1:])  # a sub-process, transaction or ad hoc sub-process: its steps are read too
_DEFINITIONS = ("timer", "message", "signal", "error", "escalation", "conditional", "terminate", "link", "compensate")


@dataclass(frozen=True)
class Step:
    """One element: ``kind`` is its BPMN element (``userTask``, ``exclusiveGateway``...), ``trigger`` its
    event definition (``timer``, ``message``...) or None; ``detail`` the timer's expression, the message's
    name or the called process; ``then`` the (flow label, target name) pairs it leads to; ``attached_to``
    the task a boundary event interrupts; ``inside`` the embedded sub-process it belongs to; ``joins`` a
    gateway where ways meet rather than part."""

    id: str
    name: str | None
    kind: str
    trigger: str | None
    detail: str | None
    lane: str | None
    then: tuple[tuple[str | None, str], ...]
    joins: bool  # a gateway where ways meet (more than one flow in, one out)
    attached_to: str | None
    inside: str | None
    line: int | None


@dataclass(frozen=True)
class ProcessOutline:
    id: str
    name: str | None
    steps: tuple[Step, ...]
    complete: bool  # False: more than MAX_STEPS elements, the rest left out


def outline(diagram: Diagram) -> list[ProcessOutline]:
    """The processes of ``diagram`` in words, in the file's order."""
    root = diagram.tree.getroot()
    participants = {
        p.get("processRef"): p.get("name") for p in root.iterfind("bpmn:collaboration/bpmn:participant", NSMAP)
    }
    messages = {m.get("id"): m.get("name") for m in root.iterfind("bpmn:message", NSMAP)}
    budget = [MAX_STEPS]
    return [
        _process(process, participants.get(process.get("id")), messages, budget)
        for process in root.iterfind("bpmn:process", NSMAP)
    ]


def _local(element: Any) -> str:
    tag = element.tag
    return tag[len(BPMN_NS) + 2 :] if isinstance(tag, str) and tag.startswith(f"{{{BPMN_NS}}}") else ""


def _short(text: str | None) -> str | None:
    if text is None:
        return None
    words = " ".join(text.split())
    return (words[: _TEXT - 1] + "…" if len(words) > _TEXT else words) or None


@dataclass
class _Read:
    """What a process holds, read from its element and its embedded sub-processes."""

    nodes: dict[str, tuple[Any, str | None]]  # id -> (element, the embedded sub-process it is in)
    flows: dict[str, list[tuple[str | None, str]]]  # source id -> [(label, target id)]
    lanes: dict[str, str]  # node id -> its lane's name
    complete: bool


def _read(process: Any, budget: list[int]) -> _Read:
    read = _Read({}, {}, {}, True)
    pending = deque([(process, None)])
    while pending:  # the process and its embedded sub-processes, without recursion
        container, inside = pending.popleft()
        for child in container:
            kind = _local(child)
            if kind == "sequenceFlow":
                read.flows.setdefault(child.get("sourceRef", ""), []).append(
                    (_short(child.get("name")), child.get("targetRef", ""))
                )
            elif kind == "laneSet":
                for lane in child.iter(f"{{{BPMN_NS}}}lane"):
                    for ref in lane.iterfind("bpmn:flowNodeRef", NSMAP):
                        read.lanes[(ref.text or "").strip()] = _short(lane.get("name")) or lane.get("id", "")
            elif child.tag in FLOW_NODES and child.get("id"):
                if budget[0] <= 0:
                    read.complete = False
                    continue
                budget[0] -= 1
                read.nodes[child.get("id")] = (child, inside)
                if child.tag in _CONTAINERS:
                    pending.append((child, child.get("id")))
    return read


def _process(process: Any, participant: str | None, messages: dict[str, str], budget: list[int]) -> ProcessOutline:
    read = _read(process, budget)
    nodes, flows = read.nodes, read.flows
    incoming: dict[str, int] = {}
    for source, targets in flows.items():
        for _label, target in targets:
            if source in nodes:
                incoming[target] = incoming.get(target, 0) + 1
    names = {node_id: _short(element.get("name")) for node_id, (element, _inside) in nodes.items()}
    steps = tuple(
        _step(node_id, nodes, flows, read.lanes, names, messages, incoming)
        for node_id in _flow_order(nodes, flows, incoming)
        if not _passes_through(nodes[node_id][0], flows)
    )
    name = _short(process.get("name")) or _short(participant)
    return ProcessOutline(process.get("id", ""), name, steps, read.complete)


def _flow_order(
    nodes: dict[str, tuple[Any, str | None]], flows: dict[str, list[tuple[str | None, str]]], incoming: dict[str, int]
) -> list[str]:
    """The order a reader follows: depth first from the start events, each branch to its end before the
    next; a join once every flow into it has been read (a loop's join when nothing else is left); a
    boundary event straight after its task; an embedded sub-process's steps after it; then what no flow
    reaches (an event sub-process's start, a stray element) in the file's order."""
    first: dict[str, list[str]] = {}  # what is read straight after a node: its boundary events, its inner starts
    for node_id, (element, inside) in nodes.items():
        if _local(element) == "boundaryEvent":
            first.setdefault(element.get("attachedToRef", ""), []).append(node_id)
        elif _local(element) == "startEvent" and inside is not None:
            first.setdefault(inside, []).append(node_id)
    waiting = dict(incoming)  # flows into each node not yet read
    seen: dict[str, None] = {}
    deferred: dict[str, None] = {}  # joins reached by some of their flows
    stack = list(reversed([i for i, (e, inside) in nodes.items() if _local(e) == "startEvent" and inside is None]))
    while len(seen) < len(nodes):
        if not stack:
            stack.append(next((i for i in deferred if i not in seen), None) or next(i for i in nodes if i not in seen))
        node_id = stack.pop()
        if node_id in seen:
            continue
        seen[node_id] = None
        after = list(first.get(node_id, []))
        for _label, target in flows.get(node_id, []):
            if target in nodes and target not in seen:
                waiting[target] = waiting.get(target, 1) - 1
                if waiting[target] <= 0:
                    after.append(target)
                else:
                    deferred[target] = None
        stack.extend(reversed(after))
    return list(seen)


def _passes_through(element: Any, flows: dict[str, list[tuple[str | None, str]]]) -> bool:
    """An unnamed gateway with one way out (a join, or the wait a listener loops back to): it says nothing
    to a reader, so the steps before it lead to where it leads."""
    return (
        _local(element).endswith("Gateway")
        and not (element.get("name") or "").strip()
        and len(flows.get(element.get("id"), [])) == 1
    )


def _target(
    target: str, nodes: dict[str, tuple[Any, str | None]], flows: dict[str, list[tuple[str | None, str]]]
) -> str:
    """Where a flow into ``target`` leads a reader: past unnamed joins (at most a diagram's worth of them)."""
    for _hop in range(len(nodes) + 1):
        found = nodes.get(target)
        if found is None or not _passes_through(found[0], flows):
            break
        target = flows[target][0][1]
    return target


def _step(
    node_id: str,
    nodes: dict[str, tuple[Any, str | None]],
    flows: dict[str, list[tuple[str | None, str]]],
    lanes: dict[str, str],
    names: dict[str, str | None],
    messages: dict[str, str],
    incoming: dict[str, int],
) -> Step:
    element, inside = nodes[node_id]
    kind = _local(element)
    trigger, detail = _trigger(element, messages)
    if kind == "callActivity":
        detail = _short(element.get("calledElement"))
    attached = element.get("attachedToRef") if kind == "boundaryEvent" else None
    return Step(
        id=node_id,
        name=names.get(node_id),
        kind=kind,
        trigger=trigger,
        detail=detail,
        lane=lanes.get(node_id) or (lanes.get(attached) if attached else None),
        then=tuple(
            (label, names.get(end) or end)
            for label, end in ((label, _target(target, nodes, flows)) for label, target in flows.get(node_id, []))
        ),
        joins=kind.endswith("Gateway") and len(flows.get(node_id, [])) <= 1 and incoming.get(node_id, 0) > 1,
        attached_to=(names.get(attached) or attached) if attached else None,
        inside=(names.get(inside) or inside) if inside else None,
        line=element.sourceline,
    )


def _trigger(element: Any, messages: dict[str, str]) -> tuple[str | None, str | None]:
    for name in _DEFINITIONS:
        found = element.find(f"bpmn:{name}EventDefinition", NSMAP)
        if found is None:
            continue
        if name == "timer":
            expression = next(
                (
                    e
                    for e in (found.find(f"bpmn:{t}", NSMAP) for t in ("timeDuration", "timeDate", "timeCycle"))
                    if e is not None
                ),
                None,
            )
            return name, _short(expression.text) if expression is not None else None
        if name == "message":
            return name, _short(messages.get(found.get("messageRef", "")) or found.get("messageRef"))
        return name, None
    return None, None
