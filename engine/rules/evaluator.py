"""Evaluating one assessment against a compiled rule set, on durable-rules, safely.

How each crash mode in LIBRARY_NOTES is avoided, by design:

- **Background dispatcher.** :class:`RulesHost` overrides ``Host._run``: no timer thread ever
  runs an action on another thread. Actions only run inside ``assert_fact``, on the caller's
  thread, while :data:`ENGINE_LOCK` is held.
- **Thread safety.** The native engine is process-global and not thread safe: every call into
  it happens under one process-wide lock.
- **Session leaks and the 1,024 live-session ceiling.** Each evaluation uses a fresh session id
  (uuid4) and deletes it in ``finally``, so at most one session is ever live.
- **Deleting a session with a queued action (segfault).** Facts are asserted one at a time,
  never as a batch, so a fact nobody matches (MessageNotHandledException, which is normal)
  cannot leave its neighbours' actions queued; before deleting, pending actions are drained.
- **Order dependence of ``none``.** Facts arrive in a canonical order and every rule waits for
  the completion marker (see :mod:`.compiler`).
- **Swallowed action exceptions.** durable-rules stores them under the state's ``exception``
  key and returns normally; every returned state is checked and the error raised as
  :class:`RuleEvaluationError`.
- **Deleting a session before the rule set has ever run an action (segfault).** Found here,
  not in LIBRARY_NOTES: on a freshly registered rule set, ``delete_state`` segfaults until one
  action has completed (even for a session that matched nothing). Each rule set is registered
  with an extra warm-up rule, fired once in a throwaway session before any evaluation.
- **Cost of unmatched facts.** durable-rules JSON-encodes every fact it cannot match into its
  exception; concern facts no pattern mentions are not asserted at all (they cannot affect a
  join or an absence test). They are still part of the recorded facts.
- **Cost of the Python layer.** Facts are sent to the native engine as JSON texts made once per
  catalogue version and evaluation (:func:`.compiler.canonical_facts`), through the same native
  call and the same action dispatch (``Ruleset.do_actions``) as ``Host.assert_fact``, but
  without re-encoding each fact or building an exception object for each unmatched one.
- **Slow actions dropped after 10 s.** Actions only append ``(rule, matched fact ids)`` to a
  list; outcomes are worked out in Python afterwards (:func:`resolve_outcomes`).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii as _json_string
from typing import Any

import durable_rules_engine
from durable import engine as durable

from engine.errors import RuleEvaluationError
from engine.rules.assessment import Assessment, Firing, Outcomes, ResolvedItem, ResolvedReferral
from engine.rules.catalogue import Catalogue
from engine.rules.compiler import CanonicalFacts, CompiledRuleset, canonical_facts
from engine.rules.model import PRIORITIES, URGENCIES, RuleFile

__all__ = [
    "ENGINE_LOCK",
    "Evaluation",
    "RulesHost",
    "WARMUP_RULE",
    "default_host",
    "firings_json",
    "evaluate",
    "resolve_outcomes",
    "run_facts",
    "warm_up",
    "with_warmup",
]

ENGINE_LOCK = threading.RLock()
WARMUP_RULE = "carepath-warmup"  # compiled rule names are "<rule id>#<n>": no clash
_MAX_DRAIN = 10_000  # far above the number of firings any rule set here can produce

Recorded = tuple[str, tuple[str, ...]]  # (durable rule name, matched fact ids)


class RulesHost(durable.Host):
    """A durable-rules host with no background dispatcher; actions only record firings."""

    def __init__(self) -> None:
        self.recording: list[Recorded] | None = None
        self._registered: set[str] = set()
        super().__init__()

    def _run(self) -> None:
        """The stock host starts timer threads here that run actions on their own; not us."""

    def get_action(self, action_name: str) -> Callable[[durable.Closure], None]:
        if action_name == WARMUP_RULE:
            return _no_op

        def action(c: durable.Closure) -> None:
            self.record(action_name, c._m)

        return action

    def record(self, rule_name: str, message: dict[str, Any]) -> None:
        """Note that ``rule_name`` fired with ``message`` (pattern name -> fact)."""
        if self.recording is None:
            raise RuntimeError(f"rule {rule_name} fired outside an evaluation")
        # pattern names sort "c0".."c9", "ctx": a fixed order for the same rule and facts
        self.recording.append((rule_name, tuple(message[k]["id"] for k in sorted(message) if k != "complete")))

    def ensure_registered(self, compiled: CompiledRuleset) -> durable.Ruleset:
        """Register the compiled rule set once (and warm it up); versions live side by side.

        Call with :data:`ENGINE_LOCK` held.
        """
        if compiled.durable_name not in self._registered:
            self.register_rulesets({compiled.durable_name: with_warmup(compiled.definition_with_actions())})
            warm_up(self, compiled.durable_name)
            self._registered.add(compiled.durable_name)
        ruleset: durable.Ruleset = self.get_ruleset(compiled.durable_name)
        return ruleset


def with_warmup(definition: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Add the warm-up rule (fires only on a ``warmup`` fact, which evaluations never send)."""
    return {**definition, WARMUP_RULE: {"all": [{"w": {"t": "warmup"}}], "run": WARMUP_RULE}}


def warm_up(host: durable.Host, durable_name: str) -> None:
    """Run one action on a fresh rule set so that deleting sessions is safe from then on."""
    sid = f"warmup-{uuid.uuid4()}"
    state = host.assert_fact(durable_name, {"id": "warmup", "t": "warmup", "sid": sid})
    _check_state(state)
    _drain(host.get_ruleset(durable_name))
    host.delete_state(durable_name, sid)


def _no_op(c: durable.Closure) -> None:
    """The warm-up rule's action: it only has to run."""


_default_host: RulesHost | None = None


def default_host() -> RulesHost:
    """The process's host (created on first use; each process has its own engine state)."""
    global _default_host
    with ENGINE_LOCK:
        if _default_host is None:
            _default_host = RulesHost()
        return _default_host


@dataclass(frozen=True)
class Evaluation:
    """One evaluation: its inputs, which rules fired (in order, with their facts), outcomes.

    ``facts_json`` and ``fired_json`` are ``facts`` and the firings as JSON text when
    :func:`evaluate` made it (it has the texts already), so that recording the evaluation does not
    encode them again.
    """

    id: str
    ruleset_name: str
    ruleset_version: str
    catalogue_version: str
    facts: tuple[dict[str, Any], ...]
    firings: tuple[Firing, ...]
    outcomes: Outcomes
    facts_json: str | None = field(default=None, compare=False, repr=False)
    fired_json: str | None = field(default=None, compare=False, repr=False)

    def fired_rule_ids(self) -> list[str]:
        seen: dict[str, None] = {}
        for f in self.firings:
            seen.setdefault(f.rule_id, None)
        return list(seen)


def evaluate(
    compiled: CompiledRuleset,
    catalogue: Catalogue,
    assessment: Assessment,
    *,
    evaluation_id: str | None = None,
    host: RulesHost | None = None,
) -> Evaluation:
    """Evaluate one assessment.

    Raises:
        InvalidInputError: when the assessment names concerns the catalogue does not know.
        RuleEvaluationError: when durable-rules fails or an action raised.
    """
    facts = canonical_facts(assessment, catalogue)
    new_id = str(uuid.uuid4())
    # A fresh evaluation id is also a fresh session id: one uuid instead of two.
    recorded = _run(compiled, facts, host or default_host(), new_id)
    rule_of = compiled.rule_of
    found = [_FIRINGS.get(one) or _firing(rule_of, one) for one in recorded]
    firings = tuple([firing for firing, _text in found])
    return Evaluation(
        id=evaluation_id or new_id,
        ruleset_name=compiled.name,
        ruleset_version=compiled.version,
        catalogue_version=compiled.rule_file.catalogue_version,
        facts=tuple(facts.facts),
        firings=firings,
        outcomes=resolve_outcomes(compiled.rule_file, firings),
        facts_json=facts.stored_json(),
        fired_json="[" + ", ".join([text for _firing, text in found]) + "]",
    )


# A firing and its JSON text, by what the host recorded: the same rule and facts come back in
# evaluation after evaluation (fact ids are the concerns' codes), so each is built once. The key
# needs no rule-set version: a durable rule's name is "<rule id>#<n>", so it names its rule.
_FIRINGS: dict[Recorded, tuple[Firing, str]] = {}
_FIRINGS_SIZE = 8192


def _firing(rule_of: dict[str, str], recorded: Recorded) -> tuple[Firing, str]:
    name, matched = recorded
    firing = Firing(rule_of[name], matched)
    if len(_FIRINGS) >= _FIRINGS_SIZE:
        _FIRINGS.clear()
    found = _FIRINGS[recorded] = (firing, _firing_json(firing))
    return found


def _firing_json(firing: Firing) -> str:
    """``json.dumps(firing.as_dict())``, the same text."""
    return f'{{"rule": {_json_string(firing.rule_id)}, "matched": [{", ".join(map(_json_string, firing.matched))}]}}'


def firings_json(firings: Sequence[Firing]) -> str:
    """``json.dumps([f.as_dict() for f in firings])``, the same text, made without the dicts."""
    return "[" + ", ".join(map(_firing_json, firings)) + "]"


def run_facts(
    compiled: CompiledRuleset, facts: list[dict[str, Any]], *, host: RulesHost | None = None
) -> list[Recorded]:
    """Assert ``facts`` one by one in a fresh session and return the firings in order.

    Raises:
        RuleEvaluationError: when durable-rules fails or an action raised.
    """
    texts = [json.dumps(fact, ensure_ascii=False)[:-1] for fact in facts]
    return _run(compiled, CanonicalFacts(facts, texts), host or default_host(), str(uuid.uuid4()))


def _run(compiled: CompiledRuleset, facts: CanonicalFacts, host: RulesHost, sid: str) -> list[Recorded]:
    """Assert the facts one by one in session ``sid`` (deleted at the end), in their order."""
    recording: list[Recorded] = []
    texts = facts.for_session(sid)
    could_match = compiled.could_match
    with ENGINE_LOCK:
        try:
            ruleset = host.ensure_registered(compiled)
        except Exception as exc:
            raise RuleEvaluationError(f"cannot register rule set {compiled.durable_name}: {exc}") from exc
        host.recording = recording
        try:
            for fact, text in zip(facts.facts, texts, strict=True):
                if could_match(fact):
                    _assert_one(ruleset, text, fact["id"])
        except RuleEvaluationError:
            raise
        except Exception as exc:
            raise RuleEvaluationError(f"the rules engine failed: {type(exc).__name__}: {exc}") from exc
        finally:
            try:
                _drain(ruleset)  # never delete a session with a queued action
            finally:
                ruleset.delete_state(sid)
                host.recording = None
    return recording


# Results of the native ``assert_fact`` (what ``durable.engine.Ruleset._handle_result`` reads).
_NOT_HANDLED, _OBSERVED, _NO_STATE = 1, 2, 3


def _assert_one(ruleset: durable.Ruleset, text: str, fact_id: str) -> None:
    """Assert one fact (JSON text with its sid) and run the actions it triggers.

    What ``Host.assert_fact`` does for a ruleset (durable-rules 2.0.28, pinned), minus its
    per-fact costs: the fact arrives already encoded, and a fact no rule looks at (normal)
    returns here instead of building a ``MessageNotHandledException`` with the fact re-encoded.
    """
    result = durable_rules_engine.assert_fact(ruleset._handle, text)
    if result[0] == _NOT_HANDLED:
        return  # no rule looks at this fact: normal
    if result[0] == _OBSERVED:
        raise RuleEvaluationError(f"fact {fact_id} was asserted twice in one evaluation")
    outcome: list[Any] = [None, None]  # (error, state), as Host._handle_function collects them

    def complete(error: Any, state: Any) -> None:
        outcome[0], outcome[1] = error, state

    ruleset.do_actions(0 if result[0] == _NO_STATE else result[1], complete)
    error, state = outcome
    if isinstance(error, BaseException):
        raise error
    if error:
        raise RuleEvaluationError(f"the rules engine failed: {error}")
    _check_state(state)


def _check_state(state: Any) -> None:
    if isinstance(state, dict) and state.get("exception"):
        raise RuleEvaluationError(f"a rule action failed: {str(state['exception']).splitlines()[0][:500]}")


def _drain(ruleset: durable.Ruleset) -> None:
    """Run any action still queued for this rule set (ours is the only live session)."""
    errors: list[Any] = []

    def complete(error: Any, state: Any) -> None:
        if error:
            errors.append(error)
        elif isinstance(state, dict) and state.get("exception"):
            errors.append(state["exception"])

    # durable-rules 2.0.28 (pinned) exposes no public "run pending actions now" call; this is
    # what its own dispatcher thread does, done here synchronously.
    try:
        for _ in range(_MAX_DRAIN):
            result = durable_rules_engine.start_action(ruleset._handle)
            if not result:
                break
            ruleset._flush_actions(json.loads(result[0]), {"message": json.loads(result[1])}, result[2], complete)
        else:
            raise RuleEvaluationError("rule actions keep queuing; giving up")
    except RuleEvaluationError:
        raise
    except Exception as exc:
        raise RuleEvaluationError(f"the rules engine failed: {type(exc).__name__}: {exc}") from exc
    if errors:
        raise RuleEvaluationError(f"a rule action failed: {str(errors[0]).splitlines()[0][:500]}")


_OUTCOME_CACHE: dict[tuple[str, tuple[str, ...]], Outcomes] = {}
_OUTCOME_CACHE_SIZE = 4096


def resolve_outcomes(rule_file: RuleFile, firings: tuple[Firing, ...] | list[Firing]) -> Outcomes:
    """Merge the ``then`` of every fired rule: one entry per code, the most urgent urgency,
    the highest priority; codes both recommended and advised against are marked for review.

    Outcomes depend only on the rule-file version and which rules fired, in order: cached.
    """
    fired: dict[str, None] = {}
    for firing in firings:
        fired.setdefault(firing.rule_id, None)
    key = (rule_file.version + rule_file.catalogue_version, tuple(fired))
    cached = _OUTCOME_CACHE.get(key)
    if cached is None:
        if len(_OUTCOME_CACHE) >= _OUTCOME_CACHE_SIZE:
            _OUTCOME_CACHE.clear()
        cached = _OUTCOME_CACHE[key] = _resolve(rule_file, list(fired))
    return cached


def _resolve(rule_file: RuleFile, fired: list[str]) -> Outcomes:
    rules = [rule_file.rule(rule_id) for rule_id in fired]
    referrals: dict[tuple[str, str], tuple[str, list[str]]] = {}
    offers: dict[str, list[str]] = {}
    info: dict[str, list[str]] = {}
    avoid: dict[str, tuple[str, list[str]]] = {}
    for rule in rules:
        for r in rule.then.refer:
            urgency, by = referrals.get((r.intervention, r.service), (r.urgency, []))
            referrals[(r.intervention, r.service)] = (_most_urgent(urgency, r.urgency), [*by, rule.id])
        for code in rule.then.offer:
            offers.setdefault(code, []).append(rule.id)
        for code in rule.then.inform:
            info.setdefault(code, []).append(rule.id)
        for n in rule.then.not_recommended:
            reason, by = avoid.get(n.intervention, (n.reason, []))
            avoid[n.intervention] = (reason, [*by, rule.id])
    recommended = {code for code, _ in referrals} | set(offers) | set(info)
    urgency_rank = {u: i for i, u in enumerate(URGENCIES)}
    return Outcomes(
        referrals=tuple(
            ResolvedReferral(code, service, urgency, tuple(by), code in avoid)
            for (code, service), (urgency, by) in sorted(
                referrals.items(), key=lambda kv: (-urgency_rank[kv[1][0]], kv[0])
            )
        ),
        interventions=tuple(ResolvedItem(c, tuple(by), None, c in avoid) for c, by in sorted(offers.items())),
        information=tuple(ResolvedItem(c, tuple(by), None, c in avoid) for c, by in sorted(info.items())),
        not_recommended=tuple(
            ResolvedItem(c, tuple(by), reason, c in recommended) for c, (reason, by) in sorted(avoid.items())
        ),
        priority=max((r.priority for r in rules), key=PRIORITIES.index, default=None),
    )


def _most_urgent(a: str, b: str) -> str:
    return a if URGENCIES.index(a) >= URGENCIES.index(b) else b
