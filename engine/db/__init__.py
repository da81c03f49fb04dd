"""The database: the engine's tables (``models``; a few aggregates keep theirs beside them and
``metadata`` gathers every one for Alembic), sessions and units of work (``session``), migrations.

May import: SQLAlchemy, Alembic and the shared modules. Nothing in ``db`` knows pathways or rules.
"""
