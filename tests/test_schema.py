"""Schema changes go through Alembic: the migrations build exactly the tables the models declare."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from engine.db.metadata import target_metadata
from engine.db.session import head_revision, upgrade_schema


def test_migrations_match_the_models(database_url: str) -> None:
    upgrade_schema(database_url)
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, target_metadata) == []
            assert context.get_current_revision() == head_revision(database_url)
    finally:
        engine.dispose()


def test_an_empty_sqlite_file_is_upgraded_by_the_server(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from api import create_app

    url = f"sqlite:///{tmp_path / 'new' / 'carepath.sqlite3'}"
    create_app({"DATABASE_URL": url})
    engine = create_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"pathway_instances", "instance_events", "rule_evaluations", "care_plan_items", "api_tokens"} <= tables
