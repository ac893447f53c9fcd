"""An SMTP server that stalls: it takes connections on the stack's SMTP port and says nothing until released.

Once released, each connection (held or new) is relayed to a real SMTP sink, so a client that
was waiting for the greeting carries on as if the server had just been slow.
"""

from __future__ import annotations

import contextlib
import socket
import threading

HOST = "127.0.0.1"


class StalledSmtp:
    """Listen on ``port``; hold every connection silent until ``release``, then relay it to ``sink_port``."""

    def __init__(self, port: int, sink_port: int) -> None:
        self.sink_port = sink_port
        self.held = 0
        self._released = threading.Event()
        self._stopped = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server((HOST, port), reuse_port=False)
        self._listener.settimeout(0.2)
        self._thread = threading.Thread(target=self._accept, name="smtp-stall", daemon=True)

    def start(self) -> StalledSmtp:
        self._thread.start()
        return self

    def release(self) -> None:
        self._released.set()

    def stop(self) -> None:
        self._stopped.set()
        self._released.set()
        self._thread.join(5)
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.close()

    def _keep(self, sock: socket.socket) -> socket.socket:
        with self._lock:
            self._sockets.append(sock)
        return sock

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            client.settimeout(None)
            self._keep(client)
            with self._lock:
                self.held += 1
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        self._released.wait()
        if self._stopped.is_set():
            return
        upstream = self._keep(socket.create_connection((HOST, self.sink_port), timeout=10))
        threading.Thread(target=_pipe, args=(upstream, client), daemon=True).start()
        _pipe(client, upstream)


def _pipe(source: socket.socket, target: socket.socket) -> None:
    """Copy bytes until either side closes."""
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            target.sendall(data)
    with contextlib.suppress(OSError):
        target.shutdown(socket.SHUT_WR)
