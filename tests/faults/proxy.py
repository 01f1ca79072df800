"""A small TCP fault proxy on loopback: the services reach the test broker (or a database) through it, and
the suite makes the link stall (bytes stop moving, connections stay open), drop (every connection is cut;
new ones are accepted again at once) or refuse (cut, and new connections turned away for a while)."""

from __future__ import annotations

import socket
import threading
import time

from tests.faults.broker import free_port


class FaultProxy:
    def __init__(self, target_port: int):
        self.target_port = target_port
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._links: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._stalled = threading.Event()
        self._refusing = threading.Event()
        self._closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._refusing.is_set():  # the server "refuses": the connection is cut at once
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), 5)
                upstream.settimeout(None)  # the 5 s was for connecting: an idle AMQP link is normal
            except OSError:
                client.close()
                continue
            for end in (client, upstream):  # small protocol messages must not wait for Nagle (40 ms each)
                end.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._links.append((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                while self._stalled.is_set() and not self._closing:
                    time.sleep(0.05)
                sink.sendall(data)
        except (OSError, EOFError):  # eventlet reports a socket closed under it as EOFError
            pass
        finally:
            # shutdown, not just close: the other direction's thread is blocked in recv on the same socket, and
            # a close() then sends nothing until that recv returns, which it never does (the server waits for
            # the client). Without it a killed client's database session stayed open, holding its row locks,
            # and work queued behind them for ever.
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                try:
                    end.close()
                except OSError:
                    pass

    def stall(self, seconds: float) -> None:
        self._stalled.set()
        time.sleep(seconds)
        self._stalled.clear()

    def refuse(self, seconds: float) -> None:
        """Cut every connection and turn new ones away for a while, as a server that is down would."""
        self.start_refusing()
        time.sleep(seconds)
        self.stop_refusing()

    def start_refusing(self) -> None:
        self._refusing.set()
        self.drop()

    def stop_refusing(self) -> None:
        self._refusing.clear()

    def drop(self) -> int:
        with self._lock:
            links, self._links = self._links, []
        for client, upstream in links:
            for end in (client, upstream):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                    end.close()
                except OSError:
                    pass
        return len(links)

    def close(self) -> None:
        self._closing = True
        self._stalled.clear()
        self._listener.close()
        self.drop()
