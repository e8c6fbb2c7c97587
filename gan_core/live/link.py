"""One end of a worker connection, shared by the server's and the worker's side."""

from __future__ import annotations

import threading
from multiprocessing.connection import Connection


class Link:
    """One end of the connection; `send` is thread-safe and quiet once the other end is gone."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self._lock = threading.Lock()

    def send(self, message: tuple) -> None:
        with self._lock:
            try:
                self.conn.send(message)
            except (OSError, ValueError):  # the worker is gone: its end is reported by the supervisor
                pass

    def close(self) -> None:
        with self._lock:
            self.conn.close()
