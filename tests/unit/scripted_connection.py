"""A scripted fake card for unit tests: it checks each command byte for byte, in order.

Not collected by pytest (the name does not start with ``test_``); test modules in this folder
import it directly (pytest puts the folder of a test module without ``__init__.py`` on
``sys.path``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable


def hexbytes(text: str) -> bytes:
    """Hex with optional spaces → bytes.

    :param text: e.g. ``"00 B2 08 00 14"``
    """
    return bytes.fromhex(text)


class ScriptedConnection:
    """A connection that answers from a list of ``(expected command, response)`` pairs.

    Each ``transmit`` must send exactly the next expected command; the response is data ‖ SW1
    ‖ SW2. :meth:`assert_consumed` fails when some exchanges were never reached.

    :param exchanges: pairs of hex strings (spaces allowed) or bytes
    """

    def __init__(self, exchanges: Iterable[tuple[str | bytes, str | bytes]]) -> None:
        self.script: deque[tuple[bytes, bytes]] = deque(
            (self._raw(command), self._raw(response)) for command, response in exchanges
        )
        self.sent: list[bytes] = []
        self.close_calls = 0

    @staticmethod
    def _raw(value: str | bytes) -> bytes:
        return hexbytes(value) if isinstance(value, str) else bytes(value)

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        """Check ``apdu`` against the script and return the scripted ``(data, sw)``.

        :param apdu: the command the code under test sent
        :raises AssertionError: the script is exhausted or the bytes differ
        """
        number = len(self.sent) + 1
        assert self.script, f"command #{number} {apdu.hex().upper()} sent after the script ran out"
        expected, response = self.script.popleft()
        assert apdu == expected, (
            f"command #{number}: sent {apdu.hex().upper()}, expected {expected.hex().upper()}"
        )
        assert len(response) >= 2, "a scripted response needs at least SW1 SW2"
        self.sent.append(bytes(apdu))
        return response[:-2], int.from_bytes(response[-2:], "big")

    def close(self) -> None:
        """Count the call; closing twice is harmless."""
        self.close_calls += 1

    def assert_consumed(self) -> None:
        """Fail when scripted exchanges remain.

        :raises AssertionError: some expected commands were never sent
        """
        assert not self.script, (
            f"{len(self.script)} scripted exchanges never happened; next expected "
            f"{self.script[0][0].hex().upper()}"
        )
