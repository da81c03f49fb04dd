"""Journey tests for authors: scenarios written in YAML next to the pathways, run on a throwaway database.

Owns reading scenario files (``reader``: bounded YAML, every problem located), running them with a
manual clock on a temporary SQLite copy of the deployed pathways folder (``runner``: a diff per
failing step with its file and line), and sequence-flow coverage per diagram (``coverage``).
``carepath pathways test`` (api/cli.py) is its front end; the format is in pathways/README.md.

May import: ``app`` (the facade it runs scenarios on), ``instances`` (timers, progress, views),
``pathways`` (the folder's diagrams), ``rules`` (the bounded YAML reader, the rule-set registry),
``spiff`` (which elements a step completed).
"""

from engine.scenarios.coverage import DiagramFlows, Flow, diagram_flows
from engine.scenarios.model import Scenario
from engine.scenarios.reader import load_scenarios, scenario_files
from engine.scenarios.runner import ScenarioReport, ScenarioResult, StepFailure, run_scenarios

__all__ = [
    "DiagramFlows",
    "Flow",
    "Scenario",
    "ScenarioReport",
    "ScenarioResult",
    "StepFailure",
    "diagram_flows",
    "load_scenarios",
    "run_scenarios",
    "scenario_files",
]
