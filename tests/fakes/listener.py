"""The TCP side every router fake shares: listen on 127.0.0.1, one thread per connection."""
from __future__ import annotations

import abc
import socket
import threading


class Listener(abc.ABC):
    """Subclasses implement ``_serve(conn)`` for one accepted connection."""

    def __init__(self):
        self._sock = None
        self._threads: list[threading.Thread] = []
        self._closing = threading.Event()
        self.port = 0

    def start(self):
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._spawn(self._accept_loop)
        return self

    def stop(self) -> None:
        self._closing.set()
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() waiting in its thread
        except OSError:
            pass
        self._sock.close()
        for thread in self._threads:
            thread.join(timeout=3)

    def _spawn(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept_loop(self):
        while not self._closing.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self._spawn(self._serve, conn)

    @abc.abstractmethod
    def _serve(self, conn: socket.socket) -> None:
        """Talk to one client until it goes away."""
