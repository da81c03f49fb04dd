"""The SpiffWorkflow boundary: everything that touches SpiffWorkflow's objects and stored format.

Owns: the patches CarePath applies to SpiffWorkflow (``patches``, installed by the facade), the stored
state format and its versions (``serializer``, ``state_json``, ``state_migrations``), the per-version
spec cache, restoring and reading workflows (``workflows``: ready tasks, forms, due timers, waiting
messages, data), compaction of finished history (``compaction``), and which elements a step took
(``coverage``, for scenario coverage).

May import: SpiffWorkflow, ``engine.calendar``, ``engine.clock``, ``engine.errors`` and
``engine.pathways`` (for compiled specs and form properties). Never the database, never ``instances``.
"""
