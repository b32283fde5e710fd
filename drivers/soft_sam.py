"""The software SAM: a security module that computes with root keys held in a file.

It derives each card's keys from national-level roots over 3 levels (spec §3.5), then the
session key and the authentication data (spec §3.6), as a PSAM or an HSM does. It exists for
development, tests and the reference HSM service (:mod:`drivers.virtual.hsm_service`), which
reuses :func:`compute_auth`. A production terminal refuses it: its keys sit in a file, not in a
secure element. SSF33 is not public, so only a PSAM or an HSM can serve SSF33 cards.
"""

from __future__ import annotations

import logging
from pathlib import Path

from apdu import crypto, purse
from apdu.errors import ProtocolError, SscardError
from apdu.purchase import PurchaseRecord
from apdu.purse import PurchaseMac1, PurchaseRequest
from apdu.records import CardAlgorithm, Generation
from apdu.sam import (
    AlgorithmNotSupported,
    AuthRequest,
    AuthResponse,
    CardIdentity,
    Mac2Invalid,
    RkssseMissing,
    SecurityModule,
)
from config.settings import Settings
from drivers.keyfile import RootKeys, crypto_algorithm, load_root_keys

log = logging.getLogger(__name__)

TRANSIT_FACTORS = 2  # card serial, issuer id (apdu.transit)
ROOT_LEVELS = 3  # national roots: L1 province, L2 city, L3 card (spec §3.5)
IRK = "irk"
RKSSSE = "rkssse"
SSF33_REFUSED = (
    "SSF33 is not a public algorithm: the software SAM cannot compute with it; "
    "SSF33 cards can only be served by a PSAM or an HSM"
)
PRODUCTION_REFUSED = (
    "the software SAM is for development and tests; production terminals use a PSAM or an HSM"
)


class SoftSamRefused(SscardError):
    """The software SAM was asked for on a production terminal."""


def check_keys(keys: RootKeys, card: CardIdentity, *, external: bool) -> None:
    """Check that the root keys can serve a card.

    :param keys: the root keys
    :param card: the card identity
    :param external: an RKSSSE EXTERNAL AUTHENTICATE is needed (3.0 cards)
    :raises AlgorithmNotSupported: SSF33, or no IRK root for the card's algorithm (``-2202``)
    :raises RkssseMissing: an RKSSSE authentication is needed and there is no root (``-2203``)
    """
    if card.algorithm == CardAlgorithm.SSF33:
        raise AlgorithmNotSupported(SSF33_REFUSED)
    if card.algorithm not in keys.irk:
        raise AlgorithmNotSupported(
            f"the key file {keys.source or '(in memory)'} has no {card.algorithm.name} IRK root"
        )
    if external and card.algorithm not in keys.rkssse:
        raise RkssseMissing(
            f"the key file {keys.source or '(in memory)'} has no {card.algorithm.name} RKSSSE "
            "root, which 3.0 cards need to read EF06"
        )


def compute_auth(keys: RootKeys, request: AuthRequest) -> AuthResponse:
    """Compute the expected INTERNAL AUTHENTICATE answer and, if asked, the RKSSSE cryptogram.

    For each key: the card key from the root over 3 levels (spec §3.5), the session key from
    the process factor, then the authentication data of the original (spec §3.6). This is
    the one place the software SAM and the reference HSM service compute.

    :param keys: the root keys
    :param request: the challenges; an external factor and original ask for RKSSSE
    :raises AlgorithmNotSupported: SSF33, or no IRK root for the card's algorithm
    :raises RkssseMissing: RKSSSE asked for and no root
    :raises ProtocolError: a request the keys cannot be derived for (half an external pair,
        a city code that is not 6 digits, fewer than 13 historical bytes, wrong lengths)
    """
    card = request.card
    external = request.external_factor is not None or request.external_original is not None
    check_keys(keys, card, external=external)
    try:
        internal = _auth_data(keys, IRK, card, request.internal_factor, request.internal_original)
        cryptogram = None
        if external:
            if request.external_factor is None or request.external_original is None:
                raise ProtocolError("an EXTERNAL AUTHENTICATE needs both a factor and an original")
            cryptogram = _auth_data(
                keys, RKSSSE, card, request.external_factor, request.external_original
            )
    except crypto.UnsupportedAlgorithm as exc:
        raise AlgorithmNotSupported(SSF33_REFUSED) from exc
    except ValueError as exc:
        raise ProtocolError(f"cannot compute the authentication: {exc}") from exc
    return AuthResponse(internal, cryptogram)


def _auth_data(
    keys: RootKeys, kind: str, card: CardIdentity, factor: bytes, original: bytes
) -> bytes:
    """Authentication data under one card key: card key → session key → auth data.

    :param keys: the root keys
    :param kind: ``irk`` or ``rkssse``
    :param card: the card identity
    :param factor: the process factor (the card's challenge)
    :param original: the original data
    :raises ValueError: on a derivation input that does not fit
    """
    alg = crypto_algorithm(card.algorithm)
    card_key = keys.card_key(kind, card.algorithm, card.city_code, card.historical, ROOT_LEVELS)
    if card_key is None:  # check_keys ran first; this guards a caller that skipped it
        raise ValueError(f"no {kind} root for {card.algorithm.name}")
    session = crypto.session_key(alg, card_key, factor)
    return crypto.auth_data(alg, session, original)


def refuse_in_production(settings: Settings) -> None:
    """Refuse the software SAM on a production terminal.

    :param settings: the terminal settings
    :raises SoftSamRefused: ``production = true``
    """
    if settings.production:
        raise SoftSamRefused(f"{PRODUCTION_REFUSED} (production = true in {settings.source})")


class SoftSam(SecurityModule):
    """A security module computing with software root keys (development and tests only).

    :param keys: the root keys, national level (3 diversification levels to a card)
    :param settings: the terminal settings
    :raises SoftSamRefused: on a production terminal
    """

    kind = "soft-sam"

    def __init__(self, keys: RootKeys, settings: Settings) -> None:
        refuse_in_production(settings)
        self.keys = keys
        self._sequence = 1
        self._pending: tuple[bytes, int] | None = None
        log.warning(
            'event=soft_sam_open warning="software keys, not for production" '
            "key_file=%s test_keys=%s",
            keys.source or "(in memory)",
            "yes" if keys.test_keys else "no",
        )

    def check(self, card: CardIdentity) -> None:
        """Check the keys can serve this card.

        :param card: the card identity
        :raises AlgorithmNotSupported: SSF33 or no IRK root (``-2202``)
        :raises RkssseMissing: a 3.0 card and no RKSSSE root (``-2203``)
        """
        check_keys(self.keys, card, external=card.generation == Generation.V3)

    def authenticate(self, request: AuthRequest) -> AuthResponse:
        """Compute the expected INTERNAL AUTHENTICATE answer and the RKSSSE cryptogram if asked.

        :param request: the challenges
        :raises AlgorithmNotSupported: SSF33 or no IRK root
        :raises RkssseMissing: RKSSSE asked for and no root
        :raises ProtocolError: a request the keys cannot be derived for
        """
        return compute_auth(self.keys, request)

    def terminal_number(self) -> str:
        """The key file's 12-digit ``terminal_number``."""
        return self.keys.terminal_number

    def purchase_mac1(self, request: PurchaseRequest) -> PurchaseMac1:
        """MAC1 from the key file's DES purchase root (:mod:`apdu.purse`).

        The terminal transaction sequence counts from 1 for each process: a development aid
        only, where a PSAM keeps it in EF ``0019``. The key file's ``dpk`` is the national
        purchase root, so the request must carry all three factors (region, issuer, card).

        :param request: the card's purchase data
        :raises AlgorithmNotSupported: no ``dpk`` in the key file, or a card algorithm id
            other than ``00`` (DES)
        :raises ProtocolError: a request with fewer than the three factors
        """
        self._pending = None
        if self.keys.dpk is None:
            raise AlgorithmNotSupported(
                f"the key file {self.keys.source or '(in memory)'} has no [des] dpk purchase root"
            )
        if request.algorithm_id != purse.PURSE_ALG_DES:
            raise AlgorithmNotSupported(
                f"purchase algorithm id {request.algorithm_id:#04x}: only 00 (DES) is computed"
            )
        if len(request.factors) != purse.MAX_LEVELS:
            raise ProtocolError(
                f"the software SAM holds the national purchase root: it needs all "
                f"{purse.MAX_LEVELS} factors (card, issuer, region), got {len(request.factors)}"
            )
        return self._mac1(self.keys.dpk, request)

    def _mac1(self, root: bytes, request: PurchaseRequest) -> PurchaseMac1:
        """MAC1 with the card key ``root`` diversified over all the request's factors."""
        sequence = self._sequence
        dpk = purse.card_purchase_key(root, request)
        sespk = purse.session_key(dpk, request, sequence)
        mac1 = purse.mac1(sespk, request, self.keys.terminal_number)
        self._sequence = (sequence + 1) & 0xFFFFFFFF
        self._pending = (sespk, request.amount)
        return PurchaseMac1(sequence, mac1)

    def check_mac2(self, mac2: bytes) -> None:
        """Check MAC2 against the pending purchase, then forget it.

        :param mac2: 4 bytes from the card
        :raises Mac2Invalid: MAC2 does not match, or no purchase is pending
        """
        pending, self._pending = self._pending, None
        if pending is None:
            raise Mac2Invalid("no purchase is pending (MAC1 first)")
        sespk, amount = pending
        if mac2 != purse.mac2(sespk, amount):
            raise Mac2Invalid("MAC2 does not match: the card did not prove the debit")


class SoftTransitSam(SoftSam):
    """The software SAM of the transit key system: MAC1 and MAC2 of transit purchases from the
    key file's ``[transit]`` roots (development and tests only, like :class:`SoftSam`).

    A transit card's purchase key hangs two levels below the root: by its issuer id, then its
    card serial (:mod:`apdu.transit`), so a request carries exactly those two factors.

    :param keys: the root keys, with a ``[transit]`` table
    :param settings: the terminal settings
    :raises SoftSamRefused: on a production terminal
    """

    kind = "soft-transit-sam"

    def purchase_mac1(self, request: PurchaseRequest) -> PurchaseMac1:
        """MAC1 from the transit purchase root.

        :param request: the card's purchase data (card serial, issuer id)
        :raises AlgorithmNotSupported: no ``[transit]`` roots, another key version, or an
            algorithm id other than ``00``
        :raises ProtocolError: a request without exactly the two transit factors
        """
        self._pending = None
        transit = self.keys.transit
        if transit is None:
            raise AlgorithmNotSupported(
                f"the key file {self.keys.source or '(in memory)'} has no [transit] roots"
            )
        if request.key_version != transit.key_version:
            raise AlgorithmNotSupported(
                f"the card's transit key version {request.key_version} is not the key file's "
                f"{transit.key_version}"
            )
        if request.algorithm_id != purse.PURSE_ALG_DES:
            raise AlgorithmNotSupported(
                f"purchase algorithm id {request.algorithm_id:#04x}: only 00 (DES) is computed"
            )
        if len(request.factors) != TRANSIT_FACTORS:
            raise ProtocolError(
                f"a transit purchase has {TRANSIT_FACTORS} factors (card serial, issuer id), "
                f"got {len(request.factors)}"
            )
        return self._mac1(transit.dpk, request)


def transit_tac_valid(keys: RootKeys, record: PurchaseRecord, factors: tuple[bytes, ...]) -> bool:
    """Whether a transit purchase's TAC is the card's (what the platform checks at clearing).

    The card's DTK derives from the ``[transit] dtk`` root over its factors (issuer id, then
    card serial); the TAC is :func:`apdu.purse.tac` over :func:`apdu.purse.tac_data` of the
    amount, type ``06``, terminal number and sequence and the time.

    :param keys: the root keys, with a ``[transit]`` table
    :param record: the purchase, with its TAC
    :param factors: the card's factors, card level first (card serial, issuer id)
    :raises AlgorithmNotSupported: no ``[transit]`` roots
    :raises ProtocolError: a record without a TAC, terminal number or sequence
    """
    if keys.transit is None:
        raise AlgorithmNotSupported("the key file has no [transit] roots to check a TAC with")
    if record.tac is None or record.terminal_number is None or record.terminal_sequence is None:
        raise ProtocolError("the purchase has no TAC to check")
    _, dtk = keys.transit.card_keys(factors)
    data = purse.tac_data(
        record.charge.amount,
        purse.TYPE_PURCHASE,
        record.terminal_number,
        record.terminal_sequence,
        record.when,
    )
    return purse.tac(dtk, data) == record.tac


def open_soft_sam(path: str | Path, settings: Settings) -> SoftSam:
    """Load a root-key file (mode 0600 required) and open a software SAM on it.

    :param path: the key file
    :param settings: the terminal settings
    :raises SoftSamRefused: on a production terminal (before the key file is read)
    :raises KeyFileError: the file is unreadable, readable by others, or malformed
    """
    refuse_in_production(settings)
    return SoftSam(load_root_keys(path), settings)
