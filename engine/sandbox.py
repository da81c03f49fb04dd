"""The sandbox: a deployment whose clock is its own, so that months of a pathway can be tried in minutes.

With ``CAREPATH_SANDBOX=1`` (:attr:`engine.settings.Settings.sandbox`) the engine's clock is a
:class:`SandboxClock`: the real time plus an offset kept in the database (table ``sandbox_clock``),
zero when the sandbox first starts, so it starts at real time. An author moves it forward
(:meth:`SandboxClock.advance`, ``POST /v1/sandbox/clock {"advance": "P3M"}``); every process on the
database -- servers and the timer worker -- reads the same offset, so timers fall due and fire by
the moved clock exactly as they would by the real one. It never moves back.

A sandbox is for synthetic patients only: :func:`require_synthetic_patients` refuses to start on a
database that holds any instance of a patient whose reference is outside the synthetic namespace
(``SYN-``, :data:`engine.instances.view.SYNTHETIC_PREFIX`), and the engine refuses to start an
instance for such a patient while in sandbox mode.

It may import ``db`` and ``instances`` (the synthetic namespace).
"""

from __future__ import annotations

import re
import threading
import time
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from engine.calendar import add_months
from engine.clock import Clock, SystemClock
from engine.db.models import PathwayInstance, SandboxClockState
from engine.db.session import read_only, unit_of_work
from engine.errors import InvalidInputError, Problem
from engine.instances.view import SYNTHETIC_PREFIX

__all__ = [
    "MAX_ADVANCE_DAYS",
    "MAX_OFFSET_DAYS",
    "SandboxClock",
    "SandboxRefusedError",
    "parse_advance",
    "require_synthetic_patients",
]

# One advance moves at most five years (a pathway's longest follow-up); all of them together, at most
# a hundred (beyond that dates stop meaning anything to a pathway).
MAX_ADVANCE_DAYS = 5 * 366
MAX_OFFSET_DAYS = 100 * 366
# ISO 8601 durations, positive only: P3M, P1Y2M, P2W, P10D, PT12H, P1DT30M.
_DURATION = re.compile(
    r"^P(?!$)(?:(\d{1,4})Y)?(?:(\d{1,5})M)?(?:(\d{1,5})W)?(?:(\d{1,6})D)?"
    r"(?:T(?=\d)(?:(\d{1,7})H)?(?:(\d{1,9})M)?(?:(\d{1,10})S)?)?$"
)
_ROW = 1
# How long a process trusts the offset it read: another process's advance is seen within this time.
REFRESH_SECONDS = 1.0


class SandboxRefusedError(ValueError):
    """Raised at start when sandbox mode is asked for on a database that holds real patients.

    A configuration error (like :class:`engine.library.EmptyLibraryError`): no request causes it.
    """


def require_synthetic_patients(sessions: sessionmaker[Session]) -> None:
    """Raises: SandboxRefusedError when any instance's patient reference is not synthetic."""
    with read_only(sessions) as session:
        prefix = func.substr(PathwayInstance.patient_ref, 1, len(SYNTHETIC_PREFIX))
        real = int(
            session.scalar(select(func.count()).select_from(PathwayInstance).where(prefix != SYNTHETIC_PREFIX)) or 0
        )
    if real:
        raise SandboxRefusedError(
            f"CAREPATH_SANDBOX is set but the database holds {real} instance(s) of patients whose reference does not "
            f"start with {SYNTHETIC_PREFIX}: a sandbox's clock is moved by hand, so it runs on a database of "
            "synthetic patients only (use another database)"
        )


def parse_advance(text: object, now: datetime) -> timedelta:
    """How far ``text`` (an ISO 8601 duration such as ``P3M``) moves the clock from ``now``:
    months and years by the calendar (31 August + P6M = 28 February), the rest exactly.

    Raises:
        InvalidInputError: not a positive duration, or more than :data:`MAX_ADVANCE_DAYS`.
    """
    match = _DURATION.match(text) if isinstance(text, str) else None
    if match is None:
        raise InvalidInputError(
            "advance must be a positive ISO 8601 duration",
            [
                Problem(
                    "a positive ISO 8601 duration such as P3M, P2W, P10D or PT12H (never negative)", field="/advance"
                )
            ],
        )
    years, months, weeks, days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    exact = timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)  # digits bound it
    calendar_months = years * 12 + months
    if calendar_months > MAX_ADVANCE_DAYS // 28 or exact > timedelta(days=MAX_ADVANCE_DAYS):
        raise InvalidInputError(
            "advance is too far", [Problem(f"at most {MAX_ADVANCE_DAYS} days at a time", field="/advance")]
        )
    delta = add_months(now, calendar_months) - now + exact
    if delta <= timedelta(0):
        raise InvalidInputError(
            "advance must move the clock forward", [Problem("must be more than zero", field="/advance")]
        )
    if delta > timedelta(days=MAX_ADVANCE_DAYS):
        raise InvalidInputError(
            "advance is too far", [Problem(f"at most {MAX_ADVANCE_DAYS} days at a time", field="/advance")]
        )
    return delta


class SandboxClock:
    """The deployment's own clock: ``real`` time plus the offset stored in the database.

    The offset is read at most every :data:`REFRESH_SECONDS` (and after each advance by this
    process), so a step's many reads of the time cost no query each.
    """

    def __init__(self, sessions: sessionmaker[Session], real: Clock | None = None) -> None:
        self.sessions = sessions
        self.real = real or SystemClock()
        self._lock = threading.Lock()
        self._offset = timedelta(0)
        self._read_at: float | None = None

    def start(self) -> None:
        """Create the clock's row (offset zero: the real time) unless the database has one."""
        with unit_of_work(self.sessions) as session:
            if session.get(SandboxClockState, _ROW) is None:
                now = self.real.now()
                session.add(SandboxClockState(id=_ROW, offset_seconds=0.0, started_at=now, updated_at=now))
        self._refresh()

    def now(self) -> datetime:
        with self._lock:
            stale = self._read_at is None or time.monotonic() - self._read_at > REFRESH_SECONDS
        if stale:
            self._refresh()
        return self.real.now() + self._offset

    @property
    def offset(self) -> timedelta:
        """How far ahead of the real time the clock is."""
        self._refresh()
        return self._offset

    def advance(self, duration: object) -> datetime:
        """Move the clock forward by ``duration`` (``P3M``...); return the new time.

        Raises:
            InvalidInputError: not a positive duration, too far at once, or the clock would be more
                than :data:`MAX_OFFSET_DAYS` ahead of the real time.
        """
        with unit_of_work(self.sessions) as session:
            row = self._row(session)
            offset = timedelta(seconds=row.offset_seconds)
            delta = parse_advance(duration, self.real.now() + offset)
            if offset + delta > timedelta(days=MAX_OFFSET_DAYS):
                raise InvalidInputError(
                    "the sandbox clock would be too far ahead",
                    [
                        Problem(
                            f"the clock may be at most {MAX_OFFSET_DAYS} days ahead of the real time", field="/advance"
                        )
                    ],
                )
            # Relative, so two advances at once both count.
            session.execute(
                update(SandboxClockState)
                .where(SandboxClockState.id == _ROW)
                .values(
                    offset_seconds=SandboxClockState.offset_seconds + delta.total_seconds(), updated_at=self.real.now()
                )
            )
        self._refresh()
        return self.now()

    def _row(self, session: Session) -> SandboxClockState:
        row = session.get(SandboxClockState, _ROW)
        if row is None:  # started by another process's start(), or not at all: start at real time
            now = self.real.now()
            row = SandboxClockState(id=_ROW, offset_seconds=0.0, started_at=now, updated_at=now)
            session.add(row)
            session.flush()
        return row

    def _refresh(self) -> None:
        with read_only(self.sessions) as session:
            seconds = session.scalar(select(SandboxClockState.offset_seconds).where(SandboxClockState.id == _ROW))
        with self._lock:
            self._offset = timedelta(seconds=seconds or 0.0)
            self._read_at = time.monotonic()
