"""A database error's text never holds the values bound to its statement (docs/operations.md, "No patient
values in the trail"): the command line prints such errors, and the server logs them, so a patient
reference or a form value bound to a failing statement would end up on a screen or in a log."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from engine.db.session import make_engine

SECRET = "NHS-9434765919"


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO no_such_table (patient_ref) VALUES (:ref)",  # OperationalError
        "INSERT INTO linked (patient_ref) VALUES (:ref)",  # IntegrityError: the second time round
    ],
)
def test_a_database_error_does_not_quote_the_bound_values(tmp_path: Path, statement: str) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE linked (patient_ref TEXT UNIQUE)"))
            connection.execute(text("INSERT INTO linked (patient_ref) VALUES (:ref)"), {"ref": SECRET})
        with pytest.raises(DBAPIError) as failed, engine.begin() as connection:
            connection.execute(text(statement), {"ref": SECRET})
        assert SECRET not in str(failed.value)
        assert "parameters hidden" in str(failed.value)  # the statement is still named, its values are not
    finally:
        engine.dispose()


def test_a_server_database_hides_the_bound_values_too() -> None:
    engine = make_engine("postgresql+psycopg://carepath@127.0.0.1:9/none")  # never connects
    try:
        assert engine.hide_parameters
    finally:
        engine.dispose()
