"""Restored workflows of recently used instances, so a warm request skips ``restore``.

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
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.instances.store import InstanceRecord

__all__ = ["WorkflowCache"]


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
