"""Counting what a fuzz run sent and what came back, for the contract runs (schemathesis) and
the hand-made malformed requests of both services (issue 10 finding 6: no answer may be 500).

A :class:`Tally` hooks a ``requests`` session (every answer it receives is counted by
status) and takes answers read off raw sockets; at the end of a module its fixture writes
one line per service to the terminal report and fails when any answer was a 500.
"""

from __future__ import annotations

import json
import socket
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter
from requests.models import Response

PROBLEM_TYPE = "application/problem+json"


@dataclass
class Tally:
    """Answers by status, for one service.

    :param name: the service, for the report line
    """

    name: str
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)

    def count(self, status: int, what: str) -> None:
        """Count one answer.

        :param status: its HTTP status
        :param what: the request, for the report when it is a 5xx
        """
        self.statuses[status] += 1
        if status >= 500:
            self.server_errors.append(f"{status} {what}"[:200])

    def session(self) -> requests.Session:
        """A session whose every answer is counted (at the adapter: schemathesis sends
        prepared requests, which skip the session's hooks)."""
        session = requests.Session()
        adapter = _CountingAdapter(self)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session

    def line(self) -> str:
        """The report line: requests, 4xx, 500s and other 5xx."""
        total = sum(self.statuses.values())
        fours = sum(n for status, n in self.statuses.items() if 400 <= status < 500)
        other = sum(n for status, n in self.statuses.items() if status > 500)
        return (
            f"fuzz {self.name}: {total} requests, {fours} answered 4xx, "
            f"{self.statuses[500]} answered 500, {other} other 5xx"
        )


class _CountingAdapter(HTTPAdapter):
    def __init__(self, tally: Tally) -> None:
        super().__init__()
        self.tally = tally

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Response:
        response = super().send(request, *args, **kwargs)
        self.tally.count(response.status_code, f"{request.method} {request.url}")
        return response


def raw_exchange(
    host: str, port: int, data: bytes, timeout: float = 10.0
) -> tuple[int, dict[str, str], bytes]:
    """Send bytes on a new connection and read one answer (the connection is closed after).

    :param host: the address
    :param port: the port
    :param data: the request bytes, exactly as sent
    :param timeout: seconds
    :returns: status, headers (lower-case names), body
    """
    with socket.create_connection((host, port), timeout=timeout) as conn:
        conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = headers.get("content-length")
    return status, headers, body[: int(length)] if length else body


def assert_problem(status: int, content_type: str, body: bytes) -> dict[str, Any]:
    """Check a refusal is a 4xx problem document; its document.

    :param status: the answer's status
    :param content_type: its Content-Type
    :param body: its body
    """
    assert 400 <= status < 500, f"{status}: {body[:200]!r}"
    assert content_type.split(";", maxsplit=1)[0] == PROBLEM_TYPE, content_type
    document = json.loads(body)
    assert document["type"] == "about:blank" and document["status"] == status
    return dict(document)


def reporting(request: pytest.FixtureRequest, *tallies: Tally) -> Iterator[None]:
    """Yield, then write each tally's line to the terminal report and fail on any 500.

    :param request: the fixture's request
    :param tallies: the tallies
    """
    yield
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # teardown output is captured otherwise
            for tally in tallies:
                if sum(tally.statuses.values()):
                    reporter.write_line(tally.line())
    errors = [error for tally in tallies for error in tally.server_errors if error[:3] == "500"]
    assert not errors, errors[:10]
