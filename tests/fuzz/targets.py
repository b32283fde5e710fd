"""Fuzz targets shared by ``make fuzz`` (atheris, coverage-guided: tests/fuzz/run.py) and the
short hypothesis form in ``make test`` (tests/fuzz/test_fuzz_targets.py).

Each target takes the fuzzer's bytes and feeds them to one parser or flow of the project. It
may end normally or raise one of the project's own errors (:data:`ALLOWED`); any other
exception is a finding. Each target also has seeds: valid inputs the fuzzers mutate from.

Card responses are framed as a script the emulated card plays back: for every command, one
length byte, that many data bytes (fewer if the input ends) and a two-byte status word; when
the script runs out the card is removed (:class:`CardRemoved`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass

from apdu.atr import Atr
from apdu.errors import CardRemoved, SscardError
from apdu.payment import Charge
from apdu.purchase import Purchase
from apdu.sam import AuthRequest, CardIdentity, hsm_step1, parse_hsm_step1
from apdu.tlv import parse_ber, parse_simple
from apdu.transit import TransitPurseSession
from apdu.transit_psam import TransitPsamModule
from apdu.transport import Connection, t0_chain
from config.errors import ConfigError
from config.settings import SettingsError, parse_settings
from config.tomlfile import parse_toml
from drivers.keyfile import load_root_keys
from drivers.soft_sam import SoftSam
from drivers.virtual import PERSONAS, TEST_KEYS
from drivers.virtual.card import Behaviour, VirtualConnection
from drivers.virtual.persona import load_persona
from drivers.virtual.ssc_card import VirtualSscCard
from drivers.virtual.transit_psam import VirtualTransitPsam, load_transit_psam
from ecard import Alg, PrivateKey, issue_credential, make_code, make_trust_list
from ecard.cbor import loads
from ecard.format import Envelope, decode_text
from ecard.trust import TrustList, parse_trust_list
from ecard.verify import verify_code
from sync.answers import batch_answer, deny_signature, server_time
from sync.transport import Exchange
from terminal.profiles import ProfileError, parse_profile
from terminal.reading import read_and_classify

#: what an input may end in besides a result
ALLOWED: tuple[type[BaseException], ...] = (SscardError, ConfigError)
NOW = 1796040000  # 2026-11-29, inside the test keys' validity
WHEN = dt.datetime(2026, 11, 29, 7, 58, 3)
PERSONA = PERSONAS / "ordinary-2.0.toml"


class ScriptedCard:
    """A card connection that answers every command from a script of fuzzer bytes.

    :param script: the framed answers (module docstring)
    """

    def __init__(self, script: bytes) -> None:
        self.script = script
        self.pos = 0

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        """The next scripted answer.

        :param apdu: the command (ignored: the script decides)
        :raises CardRemoved: when the script is used up
        """
        if self.pos + 3 > len(self.script):
            raise CardRemoved("the fuzz script ran out")
        size = self.script[self.pos]
        data = self.script[self.pos + 1 : self.pos + 1 + size]
        self.pos += 1 + len(data)
        sw = int.from_bytes(self.script[self.pos : self.pos + 2].ljust(2, b"\x90"), "big")
        self.pos += 2
        return data, sw

    def close(self) -> None:
        """Nothing to release."""

    def __enter__(self) -> ScriptedCard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RecordingConnection:
    """Plays a real emulated card and frames its answers as a script (the seeds).

    :param inner: the emulator's connection
    """

    def __init__(self, inner: Connection) -> None:
        self.inner = inner
        self.script = bytearray()

    def transmit(self, apdu: bytes) -> tuple[bytes, int]:
        """Forward and record.

        :param apdu: the command
        """
        data, sw = self.inner.transmit(apdu)
        self.script += bytes([len(data)]) + data + sw.to_bytes(2, "big")
        return data, sw

    def close(self) -> None:
        """Close the emulator's connection."""
        self.inner.close()

    def __enter__(self) -> RecordingConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@functools.cache
def _card() -> VirtualSscCard:
    roots = load_root_keys(TEST_KEYS / "test-roots.toml", require_private=False)
    return VirtualSscCard(load_persona(PERSONA), Behaviour(), roots)


@functools.cache
def _sam() -> SoftSam:
    from config.settings import Settings

    roots = load_root_keys(TEST_KEYS / "test-roots.toml", require_private=False)
    return SoftSam(roots, Settings())


@functools.cache
def _psam() -> TransitPsamModule:
    psam = VirtualTransitPsam(
        load_transit_psam(TEST_KEYS / "transit-psam.toml"), Behaviour(t0=True)
    )
    return TransitPsamModule(t0_chain(VirtualConnection(psam)))


@functools.cache
def _codes() -> tuple[TrustList, str]:
    root, platform, device = (PrivateKey.generate(alg) for alg in (Alg.ES256, Alg.SM2, Alg.SM2))
    trust = make_trust_list([platform.public_key], root, 1, NOW - 60, NOW + 86_400)
    credential = issue_credential(
        platform, token="ab" * 32, region="440100", category="3", not_before=NOW - 60,
        not_after=NOW + 3600, device_public_key=device.public_key,
    )  # fmt: skip
    code = make_code(credential, device, timestamp=NOW, counter=7)
    return parse_trust_list(trust, root.public_key.to_pem(), NOW), code


# --- the targets ------------------------------------------------------------------------------


def card_read(data: bytes) -> None:
    """Card answers into the SSC reader: the basic-info read, then with INTERNAL AUTHENTICATE."""
    card = _card()
    read_and_classify(t0_chain(ScriptedCard(data)), card.atr)
    read_and_classify(ScriptedCard(data), card.atr, authenticate=True, module=_sam())


def purse(data: bytes) -> None:
    """Card answers into the transit purchase (the PSAM is the emulated one)."""
    Purchase(TransitPurseSession(t0_chain(ScriptedCard(data))), _psam(), Charge(200), WHEN).run()


def tlv(data: bytes) -> None:
    """SIMPLE-TLV and BER-TLV parsers."""
    for parse in (parse_simple, parse_ber):
        with contextlib.suppress(SscardError):
            parse(data)


def atr(data: bytes) -> None:
    """The ATR parser."""
    Atr.parse(data)


def qr_text(data: bytes) -> None:
    """A scanned text into the whole offline verification."""
    trust, _ = _codes()
    verify_code(data.decode("utf-8", "surrogateescape"), trust, NOW)


def qr_cbor(data: bytes) -> None:
    """The CBOR subset decoder and the envelope parser, on raw bytes."""
    with contextlib.suppress(SscardError):
        loads(data, "fuzz")
    Envelope.parse(data)


def hsm_step1_text(data: bytes) -> None:
    """The HSM service's Step1 parser."""
    parse_hsm_step1(data.decode("utf-8", "surrogateescape"))


def platform_answers(data: bytes) -> None:
    """The platform client's parsing of a batch answer, the server time and a signature header."""
    exchange = Exchange(200, {"Date": data[:40].decode("latin-1")}, data, NOW, 0.01, 1)
    for parse in (batch_answer, server_time):
        with contextlib.suppress(SscardError):
            parse(exchange)
    deny_signature(data.decode("latin-1"))


def settings(data: bytes) -> None:
    """The settings loader on a TOML document."""
    text = data.decode("utf-8", "surrogateescape")
    parse_settings(parse_toml(text, "fuzz.toml", SettingsError), "fuzz.toml")


def profile(data: bytes) -> None:
    """The scenario profile loader on a TOML document."""
    text = data.decode("utf-8", "surrogateescape")
    parse_profile(parse_toml(text, "fuzz.toml", ProfileError), "fuzz.toml", "fuzz")


# --- seeds ------------------------------------------------------------------------------------


def _recorded_read() -> bytes:
    card = _card()
    link = RecordingConnection(VirtualConnection(card))
    read_and_classify(t0_chain(link), card.atr)
    return bytes(link.script)


def _recorded_purchase() -> bytes:
    roots = load_root_keys(TEST_KEYS / "test-roots.toml", require_private=False)
    card = VirtualSscCard(load_persona(PERSONA), Behaviour(t0=True), roots)
    link = RecordingConnection(VirtualConnection(card))
    Purchase(TransitPurseSession(t0_chain(link)), _psam(), Charge(200), WHEN).run()
    return bytes(link.script)


def _step1() -> bytes:
    card = _card()
    contents = read_and_classify(VirtualConnection(card), card.atr).contents
    assert contents is not None
    identity = CardIdentity(
        contents.algorithm, contents.issuer.card_id, card.historical,
        contents.generation,
    )  # fmt: skip
    request = AuthRequest(identity, bytes(range(8)), bytes(range(8, 16)))
    return hsm_step1(request).encode()


def _answers() -> bytes:
    return b'{"ack_seq": 12, "accepted": 10, "duplicates": 2, "rejected": []}'


def _settings() -> bytes:
    return b'[terminal]\nid = "T-FUZZ-01"\n[sync]\nurl = "https://platform.example/"\n'


def _profile() -> bytes:
    return (PERSONAS.parent.parent.parent / "config" / "profiles" / "transit.toml").read_bytes()


@dataclass(frozen=True)
class Target:
    """A fuzz target and its seeds.

    :param run: the target
    :param seeds: builds the valid inputs to start from
    :param tokens: words of the format for libFuzzer's dictionary (``-dict``): mutation inserts
        them whole, which gets past strict prefixes and separators
    """

    run: Callable[[bytes], object]
    seeds: Callable[[], list[bytes]]
    tokens: tuple[bytes, ...] = ()


TARGETS: dict[str, Target] = {
    "card_read": Target(card_read, lambda: [_recorded_read()]),
    "purse": Target(purse, lambda: [_recorded_purchase()]),
    "tlv": Target(
        tlv,
        lambda: [
            bytes.fromhex("0110440100D15600000512345678ABCDEF01"),
            bytes.fromhex("6F0A8407A0000000031010"),
        ],
    ),
    "atr": Target(atr, lambda: [_card().atr]),
    "qr_text": Target(
        qr_text,
        lambda: [_codes()[1].encode()],
        (b"SSC1:", b" ", b"$", b"%", b"*", b"+", b"-", b".", b"/", b":"),
    ),
    "qr_cbor": Target(qr_cbor, lambda: [decode_text(_codes()[1])]),
    "hsm_step1": Target(hsm_step1_text, lambda: [_step1()], (b"|", b"440100", b"01", b"02", b"03")),
    "platform_answers": Target(
        platform_answers,
        lambda: [_answers()],
        (
            b'"ack_seq"',
            b'"accepted"',
            b'"duplicates"',
            b'"rejected"',
            b"{",
            b"}",
            b"[",
            b"]",
            b":",
            b",",
            b"null",
            b"true",
            b"-1",
            b"1e309",
        ),
    ),
    "settings": Target(settings, lambda: [_settings()]),
    "profile": Target(profile, lambda: [_profile()]),
}


def check(name: str, data: bytes) -> None:
    """Run one input through a target; a project error is a valid end.

    :param name: the target
    :param data: the input
    :raises Exception: anything that is not one of :data:`ALLOWED` (a finding)
    """
    with contextlib.suppress(ALLOWED):
        TARGETS[name].run(data)
