"""A relay / buzzer / gate / LED board on a serial line, speaking ``docs/indicator-protocol.md``.

Stop-and-wait: one command line at a time, each answered within ``timeout_s`` by a line that
echoes its tag. A line with another tag (a late answer to an earlier command) is discarded, so
it is never taken for the answer to the command in flight. On an I/O error (USB adaptor pulled,
the far end of a pty gone) the port is closed, reopened once and the command re-sent with a new
tag; a board that still does not answer is an :class:`IndicatorError` naming the command.
"""

from __future__ import annotations

import logging
import time

import serial

from drivers.indicators.base import Indication, Indicator, IndicatorError
from drivers.indicators.protocol import (
    LED_MS_MAX,
    MAX_LINE,
    PING,
    LineFormatError,
    commands_for,
    decode_answer,
    encode_command,
    gate_open,
    next_tag,
)
from drivers.serial_port import BAUDRATE, OPEN_ERRORS, PORT_ERRORS, SerialBackend

log = logging.getLogger(__name__)


class CommandRefused(IndicatorError):
    """The board answered ``ERR`` to a command (it is there, but could not do it)."""


class SerialIndicator(SerialBackend, Indicator):
    """Drive an indicator board over a serial port (pyserial).

    An accept sends ``GATE OPEN`` (when the indication opens the gate), ``LED GREEN`` and
    ``BEEP OK``; a refusal ``LED RED`` and ``BEEP ERR``; an attention ``LED AMBER`` and
    ``BEEP ATTN``. Every command is tried even when the board refused an earlier one with
    ``ERR``; when the board stops answering, the rest are skipped (they would only time out).
    Use it from one thread.

    :param port: the device, e.g. ``/dev/ttyUSB0``
    :param baudrate: the line speed (8N1, no flow control)
    :param timeout_s: how long to wait for each answer
    :param gate_open_ms: how long an accepting gate stays released, 100–60000
    :param led_ms: how long the LED stays lit, 1–60000
    :raises ValueError: a timeout that is not above zero or a duration out of range
    :raises IndicatorError: when the port cannot be opened
    """

    def __init__(
        self,
        port: str,
        baudrate: int = BAUDRATE,
        timeout_s: float = 0.5,
        gate_open_ms: int = 3000,
        led_ms: int = 1000,
    ) -> None:
        if not timeout_s > 0:
            raise ValueError(f"the answer timeout must be above 0 seconds, got {timeout_s}")
        gate_open(gate_open_ms)  # checks the range
        if not 1 <= led_ms <= LED_MS_MAX:
            raise ValueError(f"LED time {led_ms} ms is outside 1–{LED_MS_MAX}")
        self.port = port
        self.baudrate = baudrate
        self.timeout_s = float(timeout_s)
        self.gate_open_ms = gate_open_ms
        self.led_ms = led_ms
        self._serial: serial.Serial | None = None
        self._rx = bytearray()
        self._tag = 0
        self._closed = False
        self._open()

    # -- public ------------------------------------------------------------------------------

    def indicate(self, indication: Indication) -> None:
        """Send the commands for an indication, gate first.

        :param indication: what to show
        :raises IndicatorError: naming the command(s) the board refused (``ERR``) or did not
            answer in time, or when the port is gone and cannot be reopened
        """
        failures: list[IndicatorError] = []
        for command in commands_for(indication, self.gate_open_ms, self.led_ms):
            try:
                self.command(command)
            except CommandRefused as exc:
                failures.append(exc)  # the board is there: the next command may still work
            except IndicatorError as exc:
                failures.append(exc)  # the board is not answering: the rest would time out
                break
        if len(failures) == 1:
            raise failures[0]
        if failures:
            raise IndicatorError(
                "; ".join(str(e) for e in failures), command=failures[0].command
            ) from failures[0]

    def ping(self) -> None:
        """Check that the board answers (``PING``).

        :raises IndicatorError: when it does not
        """
        self.command(PING)

    def command(self, command: str) -> None:
        """Send one protocol command and wait for its ``OK``; reconnect once on an I/O error.

        :param command: e.g. ``BEEP OK``
        :raises CommandRefused: the board answered ``ERR``
        :raises IndicatorError: no answer in time, a malformed answer, or a port that failed
            and could not be reopened
        :raises LineFormatError: a command that is not a protocol command
        """
        if self._closed:
            raise IndicatorError(f"{command}: serial indicator is closed", command=command)
        encode_command(1, command)  # reject a malformed command before touching the port
        if self._serial is None:
            self._open(command)
        try:
            self._exchange(command)
        except PORT_ERRORS as exc:
            log.warning(
                "event=indicator_reconnect kind=serial port=%s command=%r error=%r",
                self.port,
                command,
                str(exc),
            )
            self._drop()
            self._open(command)
            try:
                self._exchange(command)
            except PORT_ERRORS as again:
                self._drop()
                raise self._error(command, f"port failed again after reopening: {again}") from again

    def close(self) -> None:
        """Close the port; harmless when called twice."""
        self._closed = True
        self._drop()

    # -- port --------------------------------------------------------------------------------

    def _open(self, command: str | None = None) -> None:
        try:
            self._open_port(self.timeout_s)
        except OPEN_ERRORS as exc:
            what = f"{command}: " if command else ""
            raise IndicatorError(
                f"{what}cannot open indicator port {self.port}: {exc}", command=command
            ) from exc
        log.info("event=indicator_port_open kind=serial port=%s", self.port)

    def _forget(self) -> None:
        self._rx.clear()

    @staticmethod
    def _error(command: str, why: str) -> IndicatorError:
        return IndicatorError(f"{command}: {why}", command=command)

    # -- protocol ----------------------------------------------------------------------------

    def _exchange(self, command: str) -> None:
        port = self._serial
        assert port is not None
        self._tag = next_tag(self._tag)
        tag = self._tag
        # leftovers (a partial line, an answer that came after its timeout) are of no use now
        port.reset_input_buffer()
        self._rx.clear()
        port.write(encode_command(tag, command))
        port.flush()
        log.debug("event=indicator_command kind=serial tag=%d command=%r", tag, command)
        deadline = time.monotonic() + self.timeout_s
        discarded = 0
        while True:
            line = self._read_line(port, deadline)
            if line is None:
                extra = f" ({discarded} unreadable line(s) discarded)" if discarded else ""
                raise self._error(command, f"no answer within {self.timeout_s:g} s{extra}")
            try:
                answer = decode_answer(line)
            except LineFormatError as exc:
                if line.startswith(f"{tag} ".encode()):
                    raise self._error(command, f"malformed answer: {exc}") from exc
                discarded += 1
                log.warning("event=indicator_garbage kind=serial tag=%d bytes=%d", tag, len(line))
                continue
            if answer.tag != tag:
                log.info(
                    "event=indicator_stale_answer kind=serial tag=%d expected=%d",
                    answer.tag,
                    tag,
                )
                continue
            if not answer.ok:
                text = answer.text or "(no text)"
                raise CommandRefused(f"{command}: board answered ERR {text}", command=command)
            return

    def _read_line(self, port: serial.Serial, deadline: float) -> bytes | None:
        """The next line without CR LF, or ``None`` at the deadline."""
        while (end := self._rx.find(b"\n")) < 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            if len(self._rx) > MAX_LINE:
                # a line longer than any legal one: keep only the tail that may still matter
                del self._rx[:-MAX_LINE]
            port.timeout = remaining
            chunk = port.read(max(1, port.in_waiting))
            self._rx += chunk
        line = bytes(self._rx[:end]).rstrip(b"\r")
        del self._rx[: end + 1]
        return line
