"""Which sequence flows of the diagrams the scenarios ran no scenario took.

The diagrams are those of the pathways the scenarios started and every sub-pathway they call
(:meth:`PathwayLibrary.source` collects them as a deploy does). A flow counts as taken when its
source element completed and the flow is the source's only way on, the source is a parallel
gateway (every way on is taken), or the flow's target was reached from the source
(:class:`engine.spiff.coverage.TakenPaths`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from lxml import etree

from engine.pathways.diagrams import NSMAP
from engine.pathways.sources import PathwayLibrary
from engine.spiff.coverage import TakenPaths

__all__ = ["DiagramFlows", "Flow", "diagram_flows"]


@dataclass(frozen=True)
class Flow:
    process: str
    id: str
    source: str
    target: str
    file: str
    line: int | None

    def text(self) -> str:
        return f"{self.file}:{self.line}: {self.id} ({self.source} -> {self.target})"


@dataclass
class DiagramFlows:
    """Every sequence flow of some diagrams, per process, and the kind of each flow node."""

    flows: dict[str, list[Flow]] = field(default_factory=dict)  # process -> flows, in file order
    kinds: dict[tuple[str, str], str] = field(default_factory=dict)  # (process, element) -> tag

    def untaken(self, taken: TakenPaths) -> dict[str, list[Flow]]:
        """Per process, the flows no observed step took (processes with none are left out)."""
        out: dict[str, list[Flow]] = {}
        for process, flows in self.flows.items():
            missing = [f for f in flows if not self._taken(f, flows, taken)]
            if missing:
                out[process] = missing
        return out

    def count(self) -> int:
        return sum(len(flows) for flows in self.flows.values())

    def _taken(self, flow: Flow, flows: list[Flow], taken: TakenPaths) -> bool:
        if (flow.process, flow.source) not in taken.completed:
            return False
        if sum(1 for f in flows if f.source == flow.source) == 1:
            return True
        if self.kinds.get((flow.process, flow.source)) == "parallelGateway":
            return True
        return (flow.process, flow.source, flow.target) in taken.moves


def diagram_flows(library: PathwayLibrary, pathway_ids: Iterable[str]) -> DiagramFlows:
    """The flows of the pathways' diagrams and the sub-pathways they call, read from the folder.

    Raises:
        NotFoundError: a pathway the folder does not define.
        DiagramError: a diagram that cannot be read, or a call to a process no diagram defines.
    """
    diagrams = {d.name: d for d in library.diagrams()}
    names: set[str] = set()
    for pathway_id in pathway_ids:
        names.update(name for name in library.source(pathway_id).files if name.endswith(".bpmn"))
    found = DiagramFlows()
    for name in sorted(names):
        for process in diagrams[name].tree.getroot().iterfind("bpmn:process", NSMAP):
            process_id = process.get("id")
            flows = found.flows.setdefault(process_id, [])
            for node in process.iter():
                if not isinstance(node.tag, str):
                    continue
                tag = etree.QName(node).localname
                if tag == "sequenceFlow":
                    flows.append(
                        Flow(
                            process_id,
                            node.get("id"),
                            node.get("sourceRef"),
                            node.get("targetRef"),
                            name,
                            node.sourceline,
                        )
                    )
                elif node.get("id"):
                    found.kinds[(process_id, node.get("id"))] = tag
    return found
