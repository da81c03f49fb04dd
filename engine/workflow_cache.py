"""Restored workflows of recently used instances, so a warm request skips ``restore``.

A workflow is keyed by its instance id and the instance's revision (and pathway version): every
change to an instance bumps its revision, so a cached workflow whose revision matches the row just
read from the database is exactly the stored state. Workflows are taken out while a request uses
them (one request at a time per workflow object, LIBRARY_NOTES) and put back only after the
request's transaction committed; a failed step's half-run workflow is simply dropped.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

__all__ = ["WorkflowCache"]


class WorkflowCache:
    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._items: OrderedDict[str, tuple[int, str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, instance_id: str, revision: int, pathway_version: str) -> Any | None:
        """The cached workflow for exactly this revision, removed from the cache; else None."""
        with self._lock:
            item = self._items.pop(instance_id, None)
        if item is None or item[0] != revision or item[1] != pathway_version:
            return None
        return item[2]

    def put(self, instance_id: str, revision: int, pathway_version: str, workflow: Any) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._items[instance_id] = (revision, pathway_version, workflow)
            self._items.move_to_end(instance_id)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
