"""The host API's PIN rate limit (issue 14): every route that sends the holder's PIN to a card
(``POST /v1/card/pin/verify``, ``POST /v1/hospital/register``, ``POST /v1/hospital/settle``)
asks one :class:`PinLimiter`, so guessing the PIN through any of them, or all of them in turn,
is bounded the same: at most ``per_minute`` PIN attempts per client in a sliding minute.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from fastapi.responses import JSONResponse

__all__ = ["PIN_WINDOW_S", "PinLimiter"]

PIN_WINDOW_S = 60.0


class PinLimiter:
    """At most ``per_minute`` PIN attempts per client within :data:`PIN_WINDOW_S`.

    :param per_minute: ``pin_attempts_per_minute`` of the host settings
    :param clock: monotonic seconds
    """

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._attempts: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, client: str) -> bool:
        """Count an attempt of ``client``; False (and not counted) when it is over the limit.

        :param client: who is asking (the browser origin, else the peer address)
        """
        now = self._clock()
        with self._lock:
            recent = self._attempts.setdefault(client, deque())
            while recent and now - recent[0] > PIN_WINDOW_S:
                recent.popleft()
            if len(recent) >= self.per_minute:
                return False
            recent.append(now)
            return True

    @staticmethod
    def refusal() -> JSONResponse:
        """The answer over the limit: 429 with the national code ``-1``."""
        return JSONResponse({"code": -1, "reason": "too many PIN attempts, wait a minute"}, 429)
