"""Bridge an emulated card to pcscd's vpcd reader driver (vsmartcard).

vpcd, inside pcscd, is a TCP server on port ``35963 + slot``; the card is the client.
Connecting inserts the card, closing the socket removes it. Both directions use frames of a
2-byte big-endian length and a payload. A one-byte payload from vpcd is a control code
(``00`` power off, ``01`` power on, ``02`` reset, ``04`` get ATR — answered with the ATR);
anything longer is a command APDU, answered with the response APDU.

vpcd writes the length and the payload with two ``send()`` calls; with delayed ACKs that costs
about 40 ms per APDU, so the card sets ``TCP_QUICKACK`` before every read
(``shared/domain/pcsc-feasibility.md`` §5).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
import time

from drivers.virtual.card import CardTorn, VirtualCard

log = logging.getLogger(__name__)

VPCD_BASE_PORT = 0x8C7B  # 35963, CHANNELID of /etc/reader.conf.d/vpcd
CTRL_POWER_OFF = 0x00
CTRL_POWER_ON = 0x01
CTRL_RESET = 0x02
CTRL_GET_ATR = 0x04


def vpcd_port(slot: int) -> int:
    """The TCP port of a vpcd slot.

    :param slot: 0 for ``Virtual PCD 00 00``, 1 for ``Virtual PCD 00 01``
    """
    return VPCD_BASE_PORT + slot


class VpcdBridge:
    """Connect one emulated card to one vpcd slot.

    :param card: the emulated card
    :param slot: the vpcd slot (port 35963 + slot)
    :param host: where vpcd listens
    :param quickack: set ``TCP_QUICKACK`` before every read (turn off only to measure the trap)
    """

    def __init__(
        self, card: VirtualCard, slot: int = 0, host: str = "127.0.0.1", quickack: bool = True
    ) -> None:
        self.card = card
        self.quickack = quickack
        self.address = (host, vpcd_port(slot))
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.disconnected = threading.Event()

    # -- insert / remove ---------------------------------------------------------------------

    def insert(self, timeout: float = 5.0) -> None:
        """Connect to vpcd (insert the card) and serve it on a background thread.

        :param timeout: how long to retry while vpcd is not listening yet
        :raises ConnectionError: when vpcd does not accept within ``timeout``
        """
        sock = self._connect(timeout)
        with self._lock:
            self._sock = sock
        self.disconnected.clear()
        self._thread = threading.Thread(
            target=self._serve, args=(sock,), name=f"vpcd-card-{self.address[1]}", daemon=True
        )
        self._thread.start()

    def remove(self) -> None:
        """Close the socket (remove the card) and wait for the serving thread."""
        with self._lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._thread = None

    @property
    def inserted(self) -> bool:
        """Whether the card is connected to vpcd."""
        return self._sock is not None and not self.disconnected.is_set()

    def run_forever(self, stop: threading.Event, retry_interval: float = 0.5) -> None:
        """Keep the card inserted until ``stop`` is set, re-inserting after pcscd restarts.

        A torn card stays out of the field: it is not re-inserted.

        :param stop: set it to end the loop
        :param retry_interval: pause between connection attempts
        """
        while not stop.is_set():
            if not self.inserted:
                if self.card.torn:
                    stop.wait(retry_interval)
                    continue
                try:
                    self.insert(timeout=retry_interval)
                    log.info("event=card_inserted port=%d", self.address[1])
                except ConnectionError:
                    continue
            self.disconnected.wait(retry_interval)
            if self.disconnected.is_set() and not stop.is_set():
                log.info("event=card_disconnected port=%d", self.address[1])
                self.remove()
        self.remove()

    # -- protocol ----------------------------------------------------------------------------

    def _connect(self, timeout: float) -> socket.socket:
        deadline = time.monotonic() + timeout
        while True:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                sock.connect(self.address)
                return sock
            except OSError as exc:
                sock.close()
                if time.monotonic() >= deadline:
                    raise ConnectionError(f"vpcd not listening on {self.address}: {exc}") from exc
                time.sleep(0.05)

    def _recv_exact(self, sock: socket.socket, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            if self.quickack:
                # Linux clears QUICKACK after each ACK; set it before every read (feasibility §5)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("vpcd closed the connection")
            buf += chunk
        return bytes(buf)

    def _serve(self, sock: socket.socket) -> None:
        try:
            while True:
                (length,) = struct.unpack("!H", self._recv_exact(sock, 2))
                payload = self._recv_exact(sock, length)
                # a one-byte payload is a control code; an APDU is always longer
                reply = self._control(payload[0]) if length == 1 else self.card.process(payload)
                if reply is not None:
                    sock.sendall(struct.pack("!H", len(reply)) + reply)
        except CardTorn as exc:
            log.info("event=card_torn port=%d detail=%s", self.address[1], exc)
        except (ConnectionError, OSError) as exc:
            log.debug("event=vpcd_closed port=%d detail=%s", self.address[1], exc)
        finally:
            self.disconnected.set()
            with self._lock:
                if self._sock is sock:
                    self._sock = None
            with contextlib.suppress(OSError):
                sock.close()

    def _control(self, code: int) -> bytes | None:
        if code == CTRL_GET_ATR:
            return self.card.atr
        if code in (CTRL_POWER_ON, CTRL_RESET, CTRL_POWER_OFF):
            self.card.power_on()
            return None
        log.warning("event=vpcd_unknown_control code=%02X", code)
        return None
