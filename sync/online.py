"""Asking the platform during a tap, when a list the decision needs is stale or missing and the
scenario's degraded policy says ``online`` (docs/policy.md §3).

:class:`OnlineLists` is the terminal's link for that: one card's deny-list status
(``POST /v1/cards/status``), or a fresh catalogue or trust list fetched whole — each one signed
attempt through the sync client's transport, with the profile's short timeout, because a holder
is waiting. It never raises: an answer that does not come in time is ``None`` or ``False``, and
the pipeline falls back to the profile's ``online_fallback``. After a failure the platform is
not asked again for ``quiet_s`` seconds, so a platform that is down costs one holder one
timeout, not every holder. The decision pipeline sees only the three methods
(``terminal.list_policy.PlatformLink``), never an HTTP client.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable

import requests

from apdu.errors import SscardError
from apdu.resources import Closing
from offline_store import Store
from sync.client import SyncClient, TrustSaver
from sync.config import SyncConfig
from sync.status import PATH_CARD_STATUS, CardStatus
from sync.transport import Exchange, RetryPolicy

__all__ = ["OnlineLists"]

log = logging.getLogger(__name__)

ONE_ATTEMPT = RetryPolicy(attempts=1)
DEFAULT_QUIET_S = 30.0


class OnlineLists(Closing):
    """The platform, asked while a holder waits.

    :param config: the sync settings (:meth:`SyncConfig.from_settings`); its ``region`` is the
        catalogue's region
    :param store: the terminal's open offline store (a fetched list is applied to it)
    :param timeout_s: connect and read timeout of the one attempt
    :param session: a :class:`requests.Session` (tests); default: the transport's own
    :param clock: the wall clock (request signatures)
    :param trust_saver: verifies and keeps a fetched trust list
        (:func:`ecard.trust.save_trust_list`); without one the trust list is never
        fetched online
    :param quiet_s: after a failure, answer "no answer" at once for this long
    :param monotonic: the clock of the quiet period (tests move it)
    """

    def __init__(
        self,
        config: SyncConfig,
        store: Store,
        *,
        timeout_s: float,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
        trust_saver: TrustSaver | None = None,
        quiet_s: float = DEFAULT_QUIET_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = dataclasses.replace(config, timeout_s=timeout_s)
        self._client = SyncClient(
            self.config, store, session, clock, trust_saver=trust_saver, policy=ONE_ATTEMPT
        )
        self.quiet_s = quiet_s
        self._monotonic = monotonic
        self._quiet_until: float | None = None

    def _quiet(self) -> bool:
        """True while a recent failure keeps the platform from being asked."""
        return self._quiet_until is not None and self._monotonic() < self._quiet_until

    def _failed(self, what: str, exc: SscardError) -> None:
        self._quiet_until = self._monotonic() + self.quiet_s
        log.warning(
            "event=online_failed what=%s error=%s quiet_s=%.0f",
            what,
            type(exc).__name__,
            self.quiet_s,
        )

    def _answered(self) -> None:
        if self._quiet_until is not None:
            log.info("event=online_recovered")
        self._quiet_until = None

    def card_status(self, card_hash: str) -> CardStatus | None:
        """The platform's deny-list entry for one card.

        :param card_hash: the card's keyed hash
        :returns: the answer, or ``None`` when the platform did not answer in time or answered
            something else than the contract's answer
        :raises: nothing
        """
        if self._quiet():
            return None
        body = json.dumps({"card_hash": card_hash}).encode("ascii")

        def check(exchange: Exchange) -> CardStatus:
            return CardStatus.parse(exchange.json(), card_hash)

        try:
            _, status = self._client.transport.request(
                "POST", PATH_CARD_STATUS, body=body, content_type="application/json", check=check
            )
        except SscardError as exc:
            self._failed("card_status", exc)
            return None
        self._answered()
        log.info("event=online_card_status listed=%s", status.listed if status else None)
        return status

    def refresh_catalogue(self) -> bool:
        """Fetch the catalogue for the terminal's region and load it.

        :returns: whether a catalogue was loaded
        :raises: nothing
        """
        if self._quiet():
            return False
        try:
            report = self._client.update_catalogue(self.config.region)
        except SscardError as exc:
            self._failed("catalogue", exc)
            return False
        self._answered()
        log.info("event=online_catalogue items=%d", report.items)
        return True

    def refresh_trust_list(self) -> bool:
        """Fetch the trust list and keep it (verified against the pinned root).

        :returns: whether a current list is held afterwards
        :raises: nothing
        """
        if self._quiet():
            return False
        try:
            report = self._client.update_trust()
        except SscardError as exc:
            self._failed("trust_list", exc)
            return False
        self._answered()
        log.info("event=online_trust_list version=%s", report.version_after)
        return report.version_after is not None

    def close(self) -> None:
        """Close the HTTP session.

        :raises: nothing
        """
        self._client.close()
