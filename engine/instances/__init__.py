"""Running pathway instances: one patient's run of one pathway version, step by step.

Owns: the step (``step``: the public :class:`~engine.instances.step.StepRunner` protocol every
trigger uses -- load, restore, act, advance, save), the use cases (``service``: start, complete a
task, suspend, resume, cancel, retry), messages and timers as triggers (``messages``, ``timers``,
``worker``), moving instances between pathway versions (``migration``, with its fast path for the
instances a new version does not touch: ``migration_fast``) under a request a second
author approves (``migration_requests``, four eyes), the only writer of instance
rows and their events (``store``), what callers see of an instance (``view``), task forms
(``forms``), the cache of restored workflows (``cache``) and read-only queries (``queries``).

May import: ``engine.spiff``, ``engine.pathways``, ``engine.audit``, ``engine.care_teams``, ``engine.db``,
``engine.rules`` (for stored evaluations), ``engine.webhooks`` (the store writes a step's outbox rows),
``engine.decisions`` (business rule tasks), ``engine.four_eyes`` (who may approve a migration), the
shared modules (clock, errors, settings). Never Flask, never ``api``.
"""
