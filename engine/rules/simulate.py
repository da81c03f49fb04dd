"""Synthetic cohorts: expected referrals per service, so service planners can see demand.

Assessments are drawn from the concern catalogue with a seeded RNG. The draw is illustrative,
not epidemiological: each concern is raised with probability 0.25, raised scores lean low
(triangular 1-10, mode 3), and the context mixes ages, phases, travel times, treatment (systemic
anticancer therapy, immunotherapy, each sometimes not recorded) and smoking status. Change
:class:`CohortModel` to match local data before planning on the numbers.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from engine.rules.assessment import Assessment, PatientContext
from engine.rules.catalogue import Catalogue
from engine.rules.evaluator import Evaluation, RulesHost, evaluate
from engine.rules.model import SMOKING_STATUSES, TREATMENT_PHASES, URGENCIES, WORK_STATUSES
from engine.rules.registry import LoadedRuleset

__all__ = ["CohortModel", "SimulationReport", "simulate", "synthetic_assessments"]

_DIAGNOSES = ("breast", "prostate", "lung", "colorectal", "lymphoma", "leukaemia", "melanoma", "sarcoma", "myeloma")


@dataclass(frozen=True)
class CohortModel:
    """How synthetic patients are drawn (the defaults are illustrative)."""

    concern_probability: float = 0.25
    score_mode: float = 3.0
    young_share: float = 0.15  # aged 16-25
    caring_share: float = 0.25
    lives_alone_share: float = 0.2
    mean_travel_minutes: float = 35.0
    sact_share: float = 0.35  # on systemic anticancer therapy now or within 6 weeks
    immunotherapy_share: float = 0.1
    unrecorded_share: float = 0.2  # treatment or smoking status not recorded

    def __post_init__(self) -> None:
        for name in (
            "concern_probability",
            "young_share",
            "caring_share",
            "lives_alone_share",
            "sact_share",
            "immunotherapy_share",
            "unrecorded_share",
        ):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be between 0 and 1")
        if not 1 <= self.score_mode <= 10 or self.mean_travel_minutes <= 0:
            raise ValueError("score_mode must be 1-10 and mean_travel_minutes positive")


def synthetic_assessments(
    catalogue: Catalogue, n: int, seed: int, model: CohortModel | None = None
) -> Iterator[Assessment]:
    """``n`` reproducible synthetic assessments (same seed, same catalogue: same cohort)."""
    model = model or CohortModel()
    rng = random.Random(seed)
    # The previous assessment (half the cohort has one) is drawn from its own generator, so the
    # cohort's scores and contexts are the same as before "change since the last assessment" existed.
    earlier = random.Random(f"{seed}:previous")
    codes = sorted(catalogue.concerns)
    for _ in range(n):
        concerns = {
            code: max(1, min(10, round(rng.triangular(1, 10, model.score_mode))))
            for code in codes
            if rng.random() < model.concern_probability
        }
        young = rng.random() < model.young_share
        work = rng.choice(WORK_STATUSES)
        minutes = min(300.0, round(rng.expovariate(1 / model.mean_travel_minutes), 1))
        on_immunotherapy = rng.random() < model.immunotherapy_share
        on_sact = on_immunotherapy or rng.random() < model.sact_share
        unrecorded = model.unrecorded_share
        yield Assessment(
            concerns,
            PatientContext(
                age=rng.randint(16, 25) if young else rng.randint(26, 90),
                diagnosis=rng.choice(_DIAGNOSES),
                treatment_phase=rng.choice(TREATMENT_PHASES),
                work_status=work,
                wants_to_return_to_work=work in ("employed", "self_employed", "student") and rng.random() < 0.5,
                caring_duties=rng.random() < model.caring_share,
                lives_alone=rng.random() < model.lives_alone_share,
                travel_minutes=minutes,
                travel_km=round(minutes * 0.8, 1),
                on_sact=_recorded(rng, unrecorded, on_sact),
                on_immunotherapy=_recorded(rng, unrecorded, on_immunotherapy),
                smoking_status=_recorded(rng, unrecorded, rng.choice(SMOKING_STATUSES)),
                emotional_concern_persists=_recorded(rng, unrecorded, rng.random() < 0.3),
            ),
            previous={code: earlier.randint(0, 10) for code in codes if earlier.random() < model.concern_probability}
            if earlier.random() < 0.5
            else None,
        )


def _recorded(rng: random.Random, unrecorded_share: float, value: Any) -> Any:
    """``value``, or None (not recorded) with probability ``unrecorded_share``."""
    return None if rng.random() < unrecorded_share else value


@dataclass
class SimulationReport:
    ruleset: str
    version: str
    cohort: int
    seed: int
    referrals: dict[str, Counter[str]] = field(default_factory=dict)  # service -> urgency -> patients
    interventions: Counter[str] = field(default_factory=Counter)  # code -> patients
    rules: Counter[str] = field(default_factory=Counter)  # rule id -> patients

    def add(self, evaluation: Evaluation) -> None:
        for r in evaluation.outcomes.referrals:
            self.referrals.setdefault(r.service, Counter())[r.urgency] += 1
            self.interventions[r.intervention] += 1
        for item in (*evaluation.outcomes.interventions, *evaluation.outcomes.information):
            self.interventions[item.code] += 1
        for rule_id in evaluation.fired_rule_ids():
            self.rules[rule_id] += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "ruleset": self.ruleset,
            "version": self.version,
            "cohort": self.cohort,
            "seed": self.seed,
            "referrals_per_service": {
                service: {
                    "total": sum(c.values()),
                    "per_100_patients": round(100 * sum(c.values()) / max(self.cohort, 1), 1),
                    **{u: c[u] for u in URGENCIES if c[u]},
                }
                for service, c in sorted(self.referrals.items())
            },
            "interventions": dict(sorted(self.interventions.items())),
            "rules_fired": dict(sorted(self.rules.items())),
        }

    def text(self) -> str:
        lines = [
            f"Synthetic cohort of {self.cohort} (seed {self.seed}), rule set {self.ruleset} "
            f"version {self.version[:12]}",
            "Expected referrals per service (patients referred; by urgency):",
        ]
        for service, counts in sorted(self.referrals.items(), key=lambda kv: -sum(kv[1].values())):
            total = sum(counts.values())
            by = ", ".join(f"{u} {counts[u]}" for u in reversed(URGENCIES) if counts[u])
            lines.append(f"  {service:<24} {total:>6}  ({100 * total / max(self.cohort, 1):.1f} per 100; {by})")
        lines.append("Synthetic draw, not epidemiological data: calibrate CohortModel before planning.")
        return "\n".join(lines)


def simulate(
    loaded: LoadedRuleset,
    cohort: int,
    seed: int = 0,
    model: CohortModel | None = None,
    host: RulesHost | None = None,
) -> SimulationReport:
    """Run the rule set on ``cohort`` synthetic assessments and count proposals.

    Raises:
        ValueError: for a negative cohort size.
        RuleEvaluationError: the rules engine failed.
    """
    if cohort < 0:
        raise ValueError("the cohort size must not be negative")
    report = SimulationReport(loaded.name, loaded.version, cohort, seed)
    for assessment in synthetic_assessments(loaded.catalogue, cohort, seed, model):
        report.add(evaluate(loaded.compiled, loaded.catalogue, assessment, host=host))
    return report
