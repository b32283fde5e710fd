"""The test proxies themselves: a reset reaches the client at once and ``close`` stops every
thread, even while the client keeps its end of a reset connection open."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from proxies import ChaosProxy

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n" + b"x" * 2000


@pytest.fixture
def upstream() -> Iterator[tuple[str, int]]:
    """A loopback server answering every request with 2,000 bytes."""
    server = socket.create_server(("127.0.0.1", 0))

    def answer(conn: socket.socket) -> None:
        with conn:
            while conn.recv(65536):
                conn.sendall(ANSWER)

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    with server:
        yield server.getsockname()


@pytest.mark.parametrize("seed", range(5))
def test_a_reset_connection_is_reset_and_close_stops_its_threads(
    upstream: tuple[str, int], seed: int
) -> None:
    proxy = ChaosProxy(upstream, seed=seed, weights={"reset": 1})
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=3) as client:
        client.sendall(b"GET / HTTP/1.1\r\nHost: proxy\r\n\r\n")
        received = 0
        with pytest.raises(ConnectionResetError):
            while chunk := client.recv(65536):
                received += len(chunk)
        assert 0 < received < len(ANSWER)
        proxy.close()  # the client still holds its socket: nothing wakes the pump but close()
    assert proxy.fates == {"reset": 1}
