"""The host API served by the daemon (``[host] enabled``): the same app as ``sscard host serve``
(:func:`terminal.host.api.create_app`), over the daemon's taps instead of a pcscd of its own.

:class:`DaemonHostService` answers the API from the daemon's :class:`~terminal.host.desk.Desk`
(the reader threads and the decision worker tell it every card and decision) and asks the
desk for the scenario actions, which the worker decides and journals like any tap.
:class:`HostEndpoint` serves it with uvicorn on a thread of its own, started after the
readers and stopped before them.

Assumptions the public sources do not settle (docs/host-api.md): ``code`` is 0 for a card the
daemon read, and ``-1`` for one it could not read (the decision's reason says why: the
pipeline decides read errors, and their national code is not kept with the decision); a
scenario action is offered only by a daemon deciding for that scenario (a transit validator
registers no guest).
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apdu.errors import ReaderTimeout, SscardError
from apdu.sam import NoSecurityModule
from platform_server.errors import PlatformConfigError
from platform_server.server import PlatformServer, is_loopback
from terminal.daemon.parts import HostedDaemon
from terminal.host.api import HostConfig, create_app
from terminal.host.desk import (
    CHECKIN,
    REGISTER,
    SETTLE,
    VERIFY_PIN,
    Desk,
    DeskAction,
    Presentation,
)
from terminal.host.service import PERSONAL_FIELDS, EventHub, action_json, check_field_name_ok
from terminal.outcomes import classify

if TYPE_CHECKING:
    from config.settings import Settings

log = logging.getLogger(__name__)

#: the [host] settings a reload (SIGHUP) applies by serving again; enabling or disabling the
#: API needs a restart (the reader threads are built with or without the desk)
RELOADABLE = ("host_bind", "host_port", "host_origins", "host_token_file", "host_tls_cert",
              "host_tls_key", "host_pin_attempts")  # fmt: skip
NOT_READ = -1  # the national code shown for a card the daemon could not read (module doc)
NO_MODULE = "a settlement needs the SSC PSAM ([daemon] sam_reader): this daemon has none"


class HostSettingsError(SscardError):
    """``[host]`` settings the daemon cannot serve with."""


def host_config(settings: Settings) -> HostConfig:
    """The API's exposure from ``[host]``: a bearer token and TLS are required off loopback
    (issue 14: browsers can be made to call any address; a remote desk is on the network).

    :raises HostSettingsError: a token file that cannot be read or is open to others, TLS
        missing off loopback
    """
    token = ""
    if settings.host_token_file is not None:
        token = _read_token(settings.host_token_file)
    remote = not is_loopback(settings.host_bind)
    if remote and not token:
        raise HostSettingsError(f"[host] bind {settings.host_bind}: token_file is required")
    if remote and settings.host_tls_cert is None:
        raise HostSettingsError(f"[host] bind {settings.host_bind}: tls_cert/tls_key required")
    if (settings.host_tls_cert is None) != (settings.host_tls_key is None):
        raise HostSettingsError("[host] give both tls_cert and tls_key, or neither")
    return HostConfig(
        settings.host_bind,
        settings.host_port,
        list(settings.host_origins),
        token,
        settings.host_pin_attempts,
        tls=settings.host_tls_cert is not None,
    )


def _read_token(path: Path) -> str:
    try:
        mode = path.stat().st_mode
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise HostSettingsError(f"[host] token_file {path}: cannot be read ({exc})") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise HostSettingsError(f"[host] token_file {path}: must be 0600 (it is {mode & 0o777:o})")
    if len(token) < 16:
        raise HostSettingsError(f"[host] token_file {path}: the token needs 16 characters or more")
    return token


class DaemonHostService:
    """:class:`~terminal.host.service.HostService` over the daemon (module docstring).

    :param daemon: the running daemon (its readers, store, lock, metrics and health)
    :param desk: the desk its reader threads and worker report to
    """

    def __init__(self, daemon: HostedDaemon, desk: Desk) -> None:
        self.daemon = daemon
        self.desk = desk
        self.events: EventHub = desk.events

    def readers(self) -> list[dict[str, Any]]:
        """Each reader the daemon watches, with its state machine's state."""
        return [
            {
                "name": loop.wanted,
                "card_present": loop.state in ("processing", "waiting_removal"),
                "state": loop.state,
            }
            for loop in self.daemon.readers
        ]

    def _audit(self, client: str, names: list[str], purpose: str) -> None:
        fields = [name for name in names if check_field_name_ok(name)]
        if not fields:
            return
        terminal = self.daemon.terminal
        with self.daemon.store_lock:
            terminal.store.audit.record(
                f"host-api {client}",
                terminal.settings.terminal_id,
                terminal.profile.name,
                fields,
                purpose,
            )

    def read_card(self, reader: str | None, wait_s: float, client: str) -> dict[str, Any]:
        """The card on the reader (or the next one decided within ``wait_s``): the scenario's
        fields and the daemon's decision."""
        shown = self.desk.current(reader, wait_s)
        if shown is None:
            failure = classify(ReaderTimeout(f"no card presented within {wait_s:g} s"))
            return {"ok": False, "code": failure.code, "reason": failure.reason, "reader": ""}
        if shown.waiting:
            return {
                "ok": False,
                "code": NOT_READ,
                "reason": "the card waits for the desk's request (a room, the PIN)",
                "reader": shown.reader,
                "presentation": shown.number,
            }
        personal = [name for name in shown.card if name in PERSONAL_FIELDS or "." in name]
        self._audit(client, personal, "GET /v1/card")
        read = bool(shown.card)
        decision = shown.decision.to_json() if shown.decision is not None else None
        return {
            "ok": read,
            "code": 0 if read else NOT_READ,
            "reason": "" if read else f"card not read: {decision and decision['reason']}",
            "reader": shown.reader,
            "presentation": shown.number,
            "card": shown.card,
            "decision": decision,
        }

    def ireadcardbas(self, reader: str | None, wait_s: float, client: str) -> tuple[str, int]:
        """The ``iReadCardBas`` string of the card on the reader, as the daemon read it."""
        shown = self.desk.current(reader, wait_s)
        if shown is None:
            return "", classify(ReaderTimeout(f"no card within {wait_s:g} s")).code
        if shown.national is None:
            return "", NOT_READ
        self._audit(client, ["ssn", "name", "card_number"], "GET /v1/card/ireadcardbas")
        return shown.national, 0

    def _act(self, action: DeskAction, wait_s: float) -> Presentation:
        shown = self.desk.act(action, wait_s)
        if shown is None:
            raise ReaderTimeout(f"no card presented within {wait_s:g} s")
        return shown

    def verify_pin(self, reader: str | None, pin: str, wait_s: float) -> dict[str, Any]:
        """Verify the holder's PIN on the card the daemon holds (the worker sends it)."""
        try:
            shown = self._act(DeskAction(VERIFY_PIN, reader, pin=pin), wait_s)
        except SscardError as exc:
            failure = classify(exc)
            return {"code": failure.code, "reason": failure.reason, "tries_left": None}
        if shown.pin is None:
            return {"code": NOT_READ, "reason": "the PIN could not be sent", "tries_left": None}
        self.events.publish("pin.verified", ok=shown.pin["code"] == 0, code=shown.pin["code"])
        return shown.pin

    def _deciding(self, scenario: str) -> None:
        """:raises SscardError: the daemon decides for another scenario than ``scenario``"""
        deciding = self.daemon.terminal.profile.name
        if deciding != scenario:
            raise SscardError(f"this terminal decides for {deciding}, not {scenario}")

    def _scenario_action(self, action: DeskAction, scenario: str, wait_s: float, client: str,
                         purpose: str) -> dict[str, Any]:  # fmt: skip
        self._deciding(scenario)
        shown = self._act(action, wait_s)
        if shown.decision is None:
            raise SscardError("the daemon could not decide the card (see its log)")
        record = shown.decision.record
        if record:
            self._audit(client, list(record), purpose)
        return action_json(shown.decision, action.room)

    def hotel_checkin(
        self, room: str, reader: str | None, wait_s: float, client: str
    ) -> dict[str, Any]:
        """Register the holder of the next card (or the one on the reader) for ``room``."""
        action = DeskAction(CHECKIN, reader, room=room)
        return self._scenario_action(action, "hotel", wait_s, client, "POST /v1/hotel/checkin")

    def hospital_register(
        self, pin: str, reader: str | None, wait_s: float, client: str
    ) -> dict[str, Any]:
        """Register the patient holding the next card (or the one on the reader), with the PIN."""
        action = DeskAction(REGISTER, reader, pin=pin)
        purpose = "POST /v1/hospital/register"
        return self._scenario_action(action, "hospital", wait_s, client, purpose)

    def hospital_settle(
        self, pin: str, pay_info: str, reader: str | None, wait_s: float, client: str
    ) -> dict[str, Any]:
        """Settle a medical bill on the next card (or the one on the reader), with the PIN: the
        daemon's worker settles it with its security module (:mod:`terminal.settlement`),
        journaled like a tap.

        :returns: ``code`` (0 when debited), ``result`` (the ``iDoDebit`` output), ``decision``
        :raises SscardError: the daemon decides for another scenario than ``hospital``
        :raises NoSecurityModule: the daemon has no SSC PSAM (nor another security module)
        :raises ReaderTimeout: no card within ``wait_s``
        :raises SscardError: the worker failed on the card (an error it logged), nothing settled
        """
        self._deciding("hospital")
        if self.daemon.terminal.module is None:
            raise NoSecurityModule(NO_MODULE)
        shown = self._act(DeskAction(SETTLE, reader, pin=pin, pay_info=pay_info), wait_s)
        if shown.settled is not None:
            return shown.settled
        if self.daemon.terminal.module is None:  # the module went away while the card came
            raise NoSecurityModule(NO_MODULE)
        raise SscardError("the daemon could not settle on the card (see its log)")

    def healthz(self) -> dict[str, Any]:
        """``ok`` while the decision worker runs; the devices' health."""
        return {
            "ok": self.daemon.healthy(),
            "devices": dict(self.daemon.health.devices),
            "readers": len(self.daemon.readers),
        }

    def metrics(self) -> str:
        """The daemon's metrics (the same as its metrics port)."""
        return self.daemon.metrics.text()

    def close(self) -> None:
        """Nothing to release: the daemon owns the devices and the store."""


class HostEndpoint:
    """The API server on a thread of the daemon.

    :param daemon: the daemon
    :param desk: its desk
    :param settings: the settings it serves with
    :raises HostSettingsError: ``[host]`` that cannot be served (token, TLS, address)
    """

    def __init__(self, daemon: HostedDaemon, desk: Desk, settings: Settings) -> None:
        self.settings = settings
        self.config = host_config(settings)
        self.service = DaemonHostService(daemon, desk)
        app = create_app(self.service, self.config)
        try:
            self.server = PlatformServer(
                app,
                self.config.host,
                self.config.port,
                tls_cert=settings.host_tls_cert,
                tls_key=settings.host_tls_key,
            )
        except PlatformConfigError as exc:
            raise HostSettingsError(f"[host] {exc}") from None
        self.url = self.server.url

    def start(self) -> None:
        """Serve from a thread; return once it accepts connections.

        :raises HostSettingsError: it did not start
        """
        try:
            self.server.start()
        except PlatformConfigError as exc:
            raise HostSettingsError(f"[host] {exc}") from None
        log.info("event=host_api_serving url=%s pid=%d", self.url, os.getpid())

    def stop(self) -> None:
        """Finish the requests in flight and stop serving; harmless twice. Open event
        streams are ended first (they never finish by themselves)."""
        self.service.events.hang_up()
        self.server.stop()


def reload_endpoint(
    endpoint: HostEndpoint, daemon: HostedDaemon, desk: Desk, new: Settings
) -> HostEndpoint:
    """The endpoint serving ``new``'s ``[host]`` (SIGHUP): ``endpoint`` itself when nothing
    there changed, else a new one, started. On the same address the old one stops first (the
    port is taken again); on another address the new one binds before the old one stops.

    :returns: the endpoint now serving (the old one again when the new one cannot start)
    :raises HostSettingsError: the new one cannot start; the old settings are served again
    """
    old = endpoint.settings
    if all(getattr(old, key) == getattr(new, key) for key in RELOADABLE):
        return endpoint
    same_address = (old.host_bind, old.host_port) == (new.host_bind, new.host_port)
    if same_address:
        endpoint.stop()
    try:
        fresh = HostEndpoint(daemon, desk, new)
        fresh.start()
    except HostSettingsError:
        if same_address:
            endpoint = HostEndpoint(daemon, desk, old)
            endpoint.start()
        raise
    if not same_address:
        endpoint.stop()
    log.info("event=host_api_reloaded url=%s", fresh.url)
    return fresh
