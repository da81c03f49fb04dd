"""Restored workflows of recently used instances, so a warm request skips ``restore``; and the
latest version of each pathway, so a start skips reading it (:class:`LatestVersionCache`).

A workflow is kept with the instance row it was restored from or saved as: every change to an
instance bumps its revision, so a cached workflow whose revision matches the row just read from the
database is exactly the stored state (:meth:`WorkflowCache.take`). A step may also start from the
cached row itself (:meth:`WorkflowCache.take_latest`) and skip reading it: its save is guarded by the
revision, so a cache that fell behind (another process changed the instance) makes the save fail
and the step runs again from the database. Workflows are taken out while a request uses them (one
request at a time per workflow object, LIBRARY_NOTES) and put back only after the request's
transaction committed; a failed step's half-run workflow is simply dropped.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.instances.store import InstanceRecord

__all__ = ["LatestVersion", "LatestVersionCache", "WorkflowCache"]


class WorkflowCache:
    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._items: OrderedDict[str, tuple[InstanceRecord, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, instance_id: str, revision: int, pathway_version: str) -> Any | None:
        """The cached workflow for exactly this revision, removed from the cache; else None."""
        with self._lock:
            item = self._items.pop(instance_id, None)
        if item is None or item[0].revision != revision or item[0].pathway_version != pathway_version:
            return None
        return item[1]

    def take_latest(self, instance_id: str) -> tuple[InstanceRecord, Any] | None:
        """The last committed row and workflow this process saw for the instance, removed from the cache."""
        with self._lock:
            return self._items.pop(instance_id, None)

    def put(self, record: InstanceRecord, workflow: Any) -> None:
        """Keep a committed instance (a copy of its row) and its workflow."""
        if self.size <= 0:
            return
        instance_id = record.id
        with self._lock:
            self._items[instance_id] = (dataclasses.replace(record), workflow)
            self._items.move_to_end(instance_id)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


@dataclasses.dataclass(frozen=True)
class LatestVersion:
    """What starting an instance needs of a pathway's latest version (its spec is read only on a
    spec-cache miss, by id)."""

    id: int
    pathway_id: str
    version: str
    start_schema: str | None = None  # the start data schema's JSON text (engine.pathways.start_schema)


class LatestVersionCache:
    """The latest deployed version of each pathway, so a start reads no version row.

    Reading it through the ORM was 40% of a start request (issue 19). A deploy through this process
    clears the cache at once (:meth:`clear`, called by the engine's facade). A deploy through another
    process (another gunicorn worker, ``carepath deploy``) is seen here within ``seconds``: starts in
    between use the version before it, which stays valid (versions run side by side, and
    ``carepath migrate`` moves instances on). ``now`` is a monotonic clock (injected for tests).
    """

    def __init__(self, seconds: float = 5.0, now: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._now = now
        self._items: dict[str, tuple[float, LatestVersion]] = {}
        self._lock = threading.Lock()

    def get(self, pathway_id: str) -> LatestVersion | None:
        """The cached latest version, or None if it is not cached or older than ``seconds``."""
        item = self._items.get(pathway_id)
        if item is None or self._now() - item[0] >= self.seconds:
            return None
        return item[1]

    def put(self, version: LatestVersion) -> None:
        if self.seconds <= 0:
            return
        with self._lock:
            self._items[version.pathway_id] = (self._now(), version)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
