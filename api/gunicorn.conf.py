"""Gunicorn configuration for production: ``gunicorn -c api/gunicorn.conf.py``.

Settings come from the environment: ``CAREPATH_DATABASE_URL`` (and the other ``CAREPATH_*``
variables :func:`api.create_app` reads), ``CAREPATH_BIND`` (default 127.0.0.1:8080),
``CAREPATH_WORKERS`` (default: one per CPU core this process may run on), ``CAREPATH_THREADS``
(default 4) and ``CAREPATH_ACCESS_LOG`` (a file, ``-`` for stdout (default) or ``off``).

The app is loaded once in the master (``preload_app``): the schema upgrade and the deployment of
the bundled pathways then run once, not racing in every worker. Before the workers fork, the master
warms up (every deployed pathway's latest version and restored specs, and every rule set read and
compiled, so no worker's first request parses either) and freezes what it holds out of the garbage
collector (:func:`when_ready`): full
collections walked those long-lived objects and caused ~100 ms outliers in breast journeys (issue
19), and a collection touching them would copy the pages the workers share with the master. Each
worker drops the database connections inherited from the master right after the fork
(SQLAlchemy's documented pattern). Threaded workers keep client connections alive between requests.
"""

from __future__ import annotations

import gc
import os
from typing import Any


def _cores() -> int:
    """CPU cores this process may run on (a container's or taskset's limit, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


wsgi_app = "api:create_app()"
bind = os.environ.get("CAREPATH_BIND", "127.0.0.1:8080")
workers = int(os.environ.get("CAREPATH_WORKERS", _cores()))
worker_class = "gthread"
threads = int(os.environ.get("CAREPATH_THREADS", "4"))
keepalive = 30
timeout = 60
graceful_timeout = 30
preload_app = True
# Request lines only, without query strings: those may carry patient references.
_access_log = os.environ.get("CAREPATH_ACCESS_LOG", "-")
accesslog = None if _access_log == "off" else _access_log
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms rid=%({x-request-id}o)s'
errorlog = "-"
loglevel = os.environ.get("CAREPATH_LOG_LEVEL", "info")
limit_request_line = 8190
limit_request_fields = 100


def when_ready(server: Any) -> None:
    """In the master, once the preloaded app is ready and before any worker forks: warm up, then
    move everything alive into the collector's permanent generation (``gc.freeze``)."""
    carepath = server.app.wsgi().extensions["carepath"]
    pathways = carepath.warm_up()
    carepath.db.dispose()  # the warm-up's connections are the master's: no worker may inherit them
    gc.collect()
    gc.freeze()
    server.log.info(
        "warmed up %d pathway(s); %d objects frozen out of the collector", len(pathways), gc.get_freeze_count()
    )


def post_fork(server: Any, worker: Any) -> None:
    """Connections must not be shared across processes: drop the master's pool (without closing it)."""
    app = server.app.wsgi()
    app.extensions["carepath"].db.dispose(close=False)
