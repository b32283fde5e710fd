"""The transit PSAM (交通部 PSAM) as the security module of a transit purchase (spec doc §7.2).

Transit purchase keys are not the social-security keys: they live in a PSAM of the transit
key system, a second card in the validator next to (or instead of) the SSC PSAM. It answers
the same purchase commands as the SSC PSAM (:mod:`apdu.psam`): ``80 70`` (MAC1 and the terminal
transaction sequence) and ``80 72`` (check MAC2), and keeps its terminal number in EF ``0016``
(``00 B0 96 00 06``). What differs, and what the public sources leave open:

* the purchase application is the DF ``1001`` selected by file identifier
  (``00 A4 00 00 02 10 01``), as public transit terminal code selects it; no AID for it is
  public;
* the purchase key sits two levels above the card: ``80 70`` carries two factors, the card's
  serial and its issuer id (``80 70 00 00 24``), and a transit PSAM takes no other count, so
  there is no level retry; ``6A80``/``6700`` (wrong factor count) is
  :class:`~apdu.sam.KeyLevelInsufficient`;
* the DF stays selected between purchases (one APDU fewer per fare); a PSAM that answers
  ``6985`` to ``80 70`` (reset, re-powered) gets the SELECT again, once;
* it holds no social-security key: :meth:`TransitPsamModule.check` refuses every SSC card
  (``-2202``), so it can never be mistaken for the module of an authenticated read.
"""

from __future__ import annotations

from apdu.command import CommandApdu
from apdu.errors import ApduError
from apdu.psam import PsamModule, PsamSession, _step
from apdu.purse import MAX_LEVELS, PurchaseMac1, PurchaseRequest
from apdu.sam import (
    AlgorithmNotSupported,
    AuthRequest,
    AuthResponse,
    CardIdentity,
    KeyLevelInsufficient,
    SecurityModuleRefused,
)
from apdu.transport import Connection, send

FID_TRANSIT_DF = 0x1001
INS_SELECT = 0xA4
P1_SELECT_BY_FID = 0x00
TRANSIT_FACTORS = 2  # card serial, issuer id
SW_WRONG_LEVELS = 0x6A80
SW_WRONG_LENGTH = 0x6700
SW_CONDITIONS = 0x6985  # 80 70 outside the purchase DF
NO_SSC_KEYS = "a transit PSAM holds no social-security keys; read cards with an SSC PSAM"


class TransitPsamSession(PsamSession):
    """The transit PSAM's commands: those of :class:`~apdu.psam.PsamSession` and the selection
    of its purchase DF.

    :param connection: the PSAM's connection (the T=0 chain included)
    """

    def select_purchase_df(self) -> None:
        """``00 A4 00 00 02 10 01``: select the purchase DF.

        :raises ApduError: ``6A82`` when the PSAM has no such DF (not a transit PSAM)
        """
        command = CommandApdu(
            0x00, INS_SELECT, P1_SELECT_BY_FID, 0x00, FID_TRANSIT_DF.to_bytes(2, "big")
        )
        send(self.connection, command)


class TransitPsamModule(PsamModule):
    """A transit PSAM in a reader slot: MAC1 and MAC2 of transit purchases, nothing else.

    :param connection: the PSAM's connection, with the T=0 chain
    """

    kind = "transit-psam"

    def __init__(self, connection: Connection) -> None:
        super().__init__(connection)
        self.session = TransitPsamSession(connection)
        self._in_df = False  # the purchase DF stays selected between purchases

    def forget(self) -> None:
        """Forget what was learnt about the PSAM (terminal number, selection)."""
        super().forget()
        self._in_df = False

    def check(self, card: CardIdentity) -> None:
        """Refuse: a transit PSAM serves no social-security card.

        :param card: the card identity
        :raises AlgorithmNotSupported: always (``-2202``)
        """
        raise AlgorithmNotSupported(NO_SSC_KEYS)

    def authenticate(self, request: AuthRequest) -> AuthResponse:
        """Refuse: a transit PSAM holds no IRK or RKSSSE.

        :param request: the challenges
        :raises AlgorithmNotSupported: always (``-2202``)
        """
        raise AlgorithmNotSupported(NO_SSC_KEYS)

    def purchase_mac1(self, request: PurchaseRequest) -> PurchaseMac1:
        """MAC1 with ``80 70`` in the purchase DF, over the card serial and the issuer id.

        :param request: the card's purchase data (two factors: card serial, issuer id)
        :raises KeyLevelInsufficient: the PSAM refused the factor count (``6A80``/``6700``)
        :raises SecurityModuleRefused: any other refusal, as ``-(SW)`` (``6A88``: no key of
            the card's key version, ``6A82``: not a transit PSAM)
        """
        levels = min(TRANSIT_FACTORS, len(request.factors), MAX_LEVELS)
        session = self.session
        assert isinstance(session, TransitPsamSession)
        data = request.mac1_data(levels)
        try:
            if not self._in_df:
                session.select_purchase_df()
                self._in_df = True
            try:
                out = session.init_sam_for_purchase(data)
            except ApduError as exc:
                if exc.sw != SW_CONDITIONS:
                    raise
                # reset or re-powered since: select the DF again, once
                session.select_purchase_df()
                out = session.init_sam_for_purchase(data)
        except ApduError as exc:
            self._in_df = False
            if exc.sw in (SW_WRONG_LEVELS, SW_WRONG_LENGTH):
                raise KeyLevelInsufficient(
                    f"the transit PSAM refused {levels} diversification factors "
                    f"(SW {exc.sw:04X}); it takes the card serial and the issuer id"
                ) from exc
            raise SecurityModuleRefused(_step(exc), exc.sw) from exc
        return PurchaseMac1(int.from_bytes(out[:4], "big"), out[4:])
