"""`voice-app serve`: gunicorn with threaded workers, the app built once before forking.

Building the app in the master process loads the speech model once; the worker processes share
its memory copy-on-write. Threads and database connections do not survive a fork, so each worker
process starts its own background threads and opens its own connections after forking.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from voice_app.app import create_app, get_services, start_background_work

log = logging.getLogger(__name__)


class _Gunicorn(BaseApplication):  # type: ignore[misc]  # gunicorn ships no type hints
    def __init__(self, app: Flask, options: dict[str, Any]) -> None:
        self._app = app
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)
        if "control_socket_disable" in self.cfg.settings:
            # gunicorn 25+ opens a management socket by default; this server needs none, and two
            # servers on one machine would fight over its path.
            self.cfg.set("control_socket_disable", True)

    def load(self) -> Flask:
        return self._app


def serve(*, host: str, port: int, processes: int, threads: int) -> None:
    """Build the app (failing early on a bad setting or a missing model) and serve it."""
    app = create_app(start_background=False)
    services = get_services(app)
    # The master's pooled connections must not be shared with the children.
    services.store.dispose()

    def post_fork(_server: Any, _worker: Any) -> None:
        start_background_work(app)

    def worker_exit(_server: Any, _worker: Any) -> None:
        services.worker.stop()

    options = {
        "bind": f"{host}:{port}",
        "workers": processes,
        "worker_class": "gthread",
        "threads": threads,
        # Webhooks answer in milliseconds; a request still running after 30 s is stuck.
        "timeout": 30,
        "graceful_timeout": 20,
        "post_fork": post_fork,
        "worker_exit": worker_exit,
        "accesslog": "-",
        "proxy_allow_ips": "127.0.0.1",
    }
    log.info(
        "serving on http://%s:%d with %d processes x %d threads", host, port, processes, threads
    )
    _Gunicorn(app, options).run()
