"""A TCP relay in front of a database, to cut the network under a running app and restore it.

    relay = Relay(("127.0.0.1", 5432))        # listens on relay.port; point the app's URL there
    relay.cut()                               # every connection reset now, the port refused
    relay.restore()                           # listening again: new connections reach the target
    relay.close()                             # cut, and the port let go

A cut resets each relayed connection at once, both ends, as a crashed server's connections end: a
socket is shut for reading before it is closed, so the relay thread blocked reading it lets go and the
close sends the reset now (closing a socket another thread is reading would otherwise only take effect
at its next packet). When the target closes a connection (a server shutting down), the relay passes
the close on to the client, so the app sees its connection end instead of waiting for an answer; while
the target refuses connections, so does the relay (it resets each one it accepts).
"""

from __future__ import annotations

import contextlib
import socket
import threading

from tests.api.service import ServerPort

LINGER_RESET = b"\x01\x00\x00\x00\x00\x00\x00\x00"
"""``SO_LINGER`` on, timeout 0: ``close`` sends a TCP reset instead of a FIN."""


class Relay:
    """A TCP relay from a local port to ``target``; ``cut`` resets every connection and closes the port."""

    def __init__(self, target: tuple[str, int]):
        self.target, self.held = target, ServerPort()
        self.port = self.held.number
        self.sockets: list[socket.socket] = []
        self.listener: socket.socket | None = None
        self.lock = threading.Lock()  # a connection accepted while ``cut`` runs is reset too
        self.restore()

    def restore(self) -> None:
        """Listen again: new connections reach the target."""
        self.listener = self.held.listener()
        self.listener.settimeout(0.1)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def cut(self) -> None:
        """Stop listening and reset every open connection, as a crashed server would (the port stays
        the relay's, refusing connections until ``restore``)."""
        assert self.listener is not None
        with self.lock:
            self.listener.close()
            for sock in self.sockets:
                reset(sock)
            self.sockets.clear()

    def close(self) -> None:
        """Cut, and let the port go."""
        self.cut()
        self.held.close()

    def _accept(self, listener: socket.socket) -> None:
        while listener.fileno() != -1:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:  # the target is down: the client's connection ends as a refused one would
                reset(client)
                continue
            with self.lock:
                if listener.fileno() == -1:  # cut while this connection was being set up
                    reset(client)
                    reset(upstream)
                    return
                self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(source, sink), daemon=True).start()


def reset(sock: socket.socket) -> None:
    """Close ``sock`` with a TCP reset now, waking any thread blocked reading it."""
    with contextlib.suppress(OSError):  # already closed, or never connected
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
        sock.shutdown(socket.SHUT_RD)
    sock.close()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    """Copy ``source`` to ``sink`` until ``source`` ends; then end ``sink``'s sending side too."""
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    with contextlib.suppress(OSError):  # ``sink`` was reset or closed already
        sink.shutdown(socket.SHUT_WR)
