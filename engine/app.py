"""The assembled engine: settings, database, clock, pathways and instances in one object."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from engine.careplan.referrals import ReferralEscalations
from engine.careplan.service import CarePlanService, care_plan_operators
from engine.careplan.summaries import TreatmentSummaries
from engine.clock import Clock, SystemClock
from engine.db.session import make_engine, make_session_factory, read_only, upgrade_schema
from engine.directory import health_system_resolver
from engine.instances.service import PathwayService
from engine.pathways.sources import PathwayLibrary
from engine.pathways.validation import rule_set_names
from engine.pathways.versions import PathwayCatalog
from engine.rules import RuleSetActivations, RuleSetRegistry
from engine.rules.activation import warning_signs_in_use
from engine.sandbox import SandboxClock, require_synthetic_patients
from engine.settings import Settings
from engine.spiff import patches
from engine.webhooks import RetryPolicy, WebhookAdmin, WebhookDeliverer

__all__ = ["CarePath"]


class CarePath:
    """Everything a front end (the HTTP API, the command line, a test) needs.

    Nothing here reads global state: settings and the clock are given. ``rules``: a registry of
    ``settings.rules_dir`` to share (scenario runs start an engine per scenario; compiling the rule
    files again for each took a second).
    """

    def __init__(
        self,
        settings: Settings,
        clock: Clock | None = None,
        *,
        upgrade: bool = False,
        rules: RuleSetRegistry | None = None,
    ) -> None:
        """Raises: SandboxRefusedError (``settings.sandbox`` on a database holding real patients)."""
        patches.install()  # SpiffWorkflow as CarePath runs it (engine.spiff.patches)
        self.settings = settings
        if upgrade:
            upgrade_schema(settings.database_url)
        self.db: Engine = make_engine(settings.database_url, connect_timeout=settings.database_connect_timeout)
        # A streaming replica the API's reads may use (engine.db.replica); None: everything reads the primary.
        self.replica_db: Engine | None = (
            make_engine(settings.read_database_url, connect_timeout=settings.database_connect_timeout)
            if settings.read_database_url
            else None
        )
        # The trail key goes to every session (engine.audit authenticates events with it).
        self.sessions: sessionmaker[Session] = make_session_factory(
            self.db, trail_key=settings.trail_key(), replica=self.replica_db
        )
        self.sandbox: SandboxClock | None = None
        if settings.sandbox:  # the deployment's own clock, over the given (or real) one (engine.sandbox)
            try:
                require_synthetic_patients(self.sessions)
                self.sandbox = SandboxClock(self.sessions, clock)
                self.sandbox.start()
            except BaseException:
                self.db.dispose()
                raise
        self.clock: Clock = self.sandbox or clock or SystemClock()
        # Deploys check rule set names and service operators against what this server has, as
        # ``carepath validate`` does (the operators are read at each deploy: a deployment may add its own).
        self.catalog = PathwayCatalog(
            PathwayLibrary(settings.pathways_dir),
            self.sessions,
            self.clock,
            known_rule_sets=lambda: rule_set_names(settings.rules_dir),
            known_operators=lambda: self.instances.operators,
            on_deploy=lambda: self.instances.steps.versions.clear(),
            four_eyes=settings.four_eyes,
        )
        # A changed rule file is picked up within a second, without a restart.
        self.rules = rules or RuleSetRegistry(settings.rules_dir, recheck_seconds=1.0)
        # Four eyes: evaluations use each rule set's active version, recorded and activated here.
        self.rule_sets = RuleSetActivations(self.rules, self.sessions, self.clock, four_eyes=settings.four_eyes)
        # The patient's health system as the documents resolve it, recorded at the start and read by the
        # pathways' country-specific gateways (engine.careplan.health_system).
        health_system = health_system_resolver(settings)
        self.instances = PathwayService(
            settings,
            self.sessions,
            self.clock,
            care_plan_operators(
                self.rules, settings.referral_timeframes, active_only=settings.four_eyes, health_system=health_system
            ),
            health_system=health_system,
            site_check=self._site_check,
            choice_codes=self._choice_codes,
        )
        self.care_plans = CarePlanService(self.sessions, self.clock, settings.referral_timeframes)
        # The worker's scan for referrals not accepted in time (engine.careplan.referrals).
        self.referral_escalations = ReferralEscalations(self.sessions, self.clock, self.instances)
        # End of treatment summaries per phase, and the worker's scan for overdue ones (engine.careplan.summaries).
        self.treatment_summaries = TreatmentSummaries(
            self.sessions, self.clock, self.instances, settings.referral_timeframes.time_zone
        )
        # The worker delivers the webhook outbox with it (engine.webhooks, docs/webhooks.md).
        self.webhooks = WebhookDeliverer(
            self.sessions,
            self.clock,
            RetryPolicy(
                max_attempts=settings.webhook_max_attempts,
                timeout_seconds=settings.webhook_timeout_seconds,
                first_wait=timedelta(seconds=settings.webhook_first_retry_seconds),
                longest_wait=timedelta(seconds=settings.webhook_longest_retry_seconds),
            ),
            allow_private_networks=settings.webhook_allow_private_networks,
        )
        self.webhook_admin = WebhookAdmin(
            self.sessions, self.clock, allow_private_networks=settings.webhook_allow_private_networks
        )

    def _site_check(self, pathway_id: str, data: dict[str, Any]) -> str | None:
        """The site a start's or a correction's diagnosis names when it is not the pathway's own, by the current
        diagnoses' vocabulary (engine.pathway_checks). Raises: RuleFileError (the catalogue is invalid)."""
        named = self.rules.catalogue().diagnoses.other_site(pathway_id, data.get("diagnosis"))
        return named.code if named is not None else None

    def _choice_codes(self, session: Session, name: str) -> frozenset[str]:
        """The codes a form's field marked ``x-carepath-choices: name`` may hold: for ``warning_signs``, every
        sign of the catalogue in use (the activated one with four eyes), whatever the diagnosis: the web page
        offers the patient's own, a client may name one of another list. Raises: RuleFileError."""
        if name != "warning_signs":
            raise ValueError(f"no list of choices {name!r}")
        catalogue = warning_signs_in_use(session, self.rules, active_only=self.settings.four_eyes)
        return frozenset(sign.code for signs in catalogue.signs.values() for sign in signs)

    def warm_up(self) -> list[str]:
        """Load the latest version of every deployed pathway, with its restored specs, and every rule
        set into this process's caches (a server does it once before its workers fork,
        ``api/gunicorn.conf.py``); returns the pathway ids.

        Rule sets are read and compiled here, not registered with durable-rules (its native state is
        each process's own, registered at a worker's first evaluation).

        Raises:
            RuleFileError: a rule file or the catalogue is invalid.
        """
        self.rules.names()  # reads and compiles every rule set: 0.5 s off a worker's first assessment
        pathway_ids = [info.pathway_id for info in self.catalog.pathways()]
        with read_only(self.sessions) as session:
            for pathway_id in pathway_ids:
                self.instances.steps.warm_up(session, pathway_id)
        return pathway_ids

    def close(self) -> None:
        self.db.dispose()
        if self.replica_db is not None:
            self.replica_db.dispose()
