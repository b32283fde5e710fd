"""Reading a card: from a driver connection and its ATR to a result the CLI and API print.

The JSON shape (``sscard read --format json``) is a public interface: ``ok``, ``code`` (the
national error code, 0 on success), ``reason``, and under ``card`` the items of
:func:`card_fields`. Dates are ``YYYY-MM-DD``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from apdu import national
from apdu.atr import Atr
from apdu.errors import SecurityNotSatisfied, SscardError
from apdu.identity import CATEGORY_NAMES, ETHNICITY_NAMES, SEX_NAMES
from apdu.national import NO_TERMINAL_NUMBER, ireadcardbas
from apdu.records import HOLDER_ITEMS, CardAlgorithm, CardContents, HolderData
from apdu.sam import NoSecurityModule, SecurityModule
from apdu.ssc import SscSession
from apdu.sw import Sw
from apdu.transport import Connection, t0_chain
from terminal.outcomes import EXIT_OK, Failure, classify

if TYPE_CHECKING:
    from drivers.readers import CardConnection


@dataclass(slots=True)
class ReadResult:
    """The outcome of one read.

    :param contents: what was read, if anything
    :param failure: why the read failed, or ``None``
    :param reader: the reader name
    :param protocol: ``T=0`` or ``T=1``
    :param warnings: what the operator should know (fields left unread and why)
    :param terminal_number: the security module's 终端机编号, zeros without one
    :param module: the security module's kind (``psam``, ``hsm``, ``soft-sam``), empty if none
    """

    contents: CardContents | None
    failure: Failure | None
    reader: str = ""
    protocol: str = ""
    warnings: list[str] = field(default_factory=list)
    terminal_number: str = NO_TERMINAL_NUMBER
    module: str = ""

    @property
    def ok(self) -> bool:
        """True when the card was read completely."""
        return self.failure is None

    @property
    def code(self) -> int:
        """The national code: 0 on success."""
        return 0 if self.failure is None else self.failure.code

    @property
    def exit_status(self) -> int:
        """The CLI exit status."""
        return EXIT_OK if self.failure is None else self.failure.exit_status


#: why EF06 is left unread without a security module on a 3.0 card
NEEDS_RKSSSE = "EF06 needs RKSSSE external authentication (6982); use a security module"


def read_contents(
    connection: Connection,
    historical: bytes,
    module: SecurityModule | None = None,
    *,
    authenticate: bool = False,
) -> CardContents:
    """Read EF05 and EF06 in the steps of the card session.

    Without authentication: what the card gives freely, EF05 always and EF06 unless it is
    guarded (then its items are listed as unreadable). With it: the national ``iReadCardBas``
    flow (spec doc §4.3), EF05, then the genuineness proof (and RKSSSE on 3.0), then EF06.

    :param connection: the card, with the T=0 chain
    :param historical: the ATR historical bytes
    :param module: the security module
    :param authenticate: run the national flow; with ``module=None`` it stops after EF05
    :raises NoSecurityModule: the national flow without a module (``-2201``)
    :raises ApplicationLocked: SSSE answered ``9303``
    :raises CardBlocked: the card answered ``6A81``
    :raises SecurityModuleError: the module cannot serve the card
    :raises CardNotGenuine: INTERNAL AUTHENTICATE mismatch
    :raises SscardError: other card or data errors
    """
    session = SscSession(connection, historical)
    issuer = session.read_issuer()
    if authenticate:
        if module is None:
            raise NoSecurityModule("no PSAM: connect one, or use --hsm or --soft-sam")
        session.authenticate(module, holder=True)
    algorithm = CardAlgorithm.from_id(session.algorithm_id, issuer.card_id)
    unreadable: dict[str, str] = {}
    holder: HolderData | None
    try:
        holder = session.read_holder()
    except SecurityNotSatisfied:
        if authenticate:
            raise
        holder, unreadable = None, dict.fromkeys(HOLDER_ITEMS, NEEDS_RKSSSE)
    return CardContents(historical, algorithm, issuer, holder, unreadable)


def outcome(contents: CardContents) -> tuple[Failure | None, list[str]]:
    """Decide whether a read is complete and collect the warnings about the data.

    :param contents: what was read
    """
    warnings: list[str] = []
    issuer, holder = contents.issuer, contents.holder
    if issuer.card_number_valid is False:
        warnings.append("card number check character is wrong")
    if holder is not None and holder.ssn_info is not None:
        info = holder.ssn_info
        if info.check_valid is False:
            warnings.append("social security number check digit is wrong")
        if info.kind != "mainland":
            warnings.append(f"social security number is not a mainland number ({info.kind})")
    failure = None
    if contents.unreadable:
        reasons = sorted(set(contents.unreadable.values()))
        failure = Failure(national.for_sw(Sw.SECURITY_NOT_SATISFIED), "; ".join(reasons))
    return failure, warnings


def read_and_classify(
    raw: Connection,
    atr: bytes,
    reader: str = "",
    protocol: str = "",
    *,
    authenticate: bool = False,
    module: SecurityModule | None = None,
) -> ReadResult:
    """Read a card and turn every error into a :class:`ReadResult`, never an exception.

    :param raw: the driver's connection
    :param atr: the card's ATR
    :param reader: the reader name, for the result
    :param protocol: the transmission protocol, for the result
    :param authenticate: run the national flow with a security module (§4.3); with
        ``module=None`` that flow reports ``-2201`` (no PSAM)
    :param module: the security module
    """
    terminal_number = NO_TERMINAL_NUMBER
    try:
        historical = Atr.parse(atr).historical
        contents = read_contents(t0_chain(raw), historical, module, authenticate=authenticate)
        if authenticate and module is not None:
            terminal_number = module.terminal_number()
    except SscardError as exc:
        return ReadResult(None, classify(exc), reader, protocol)
    failure, warnings = outcome(contents)
    result = ReadResult(contents, failure, reader, protocol, warnings)
    result.terminal_number = terminal_number
    result.module = module.kind if module is not None else ""
    return result


def read_card(
    connection: CardConnection,
    *,
    authenticate: bool = False,
    module: SecurityModule | None = None,
) -> ReadResult:
    """Read the card on a reader's connection, then close the connection.

    :param connection: the reader's connection to the card (its ATR, reader name and protocol
        go into the result)
    :param authenticate: run the national flow with a security module, as
        :func:`read_and_classify`
    :param module: the security module
    """
    with connection:
        return read_and_classify(
            connection,
            connection.atr,
            connection.reader,
            connection.protocol_name,
            authenticate=authenticate,
            module=module,
        )


def _date(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def card_fields(contents: CardContents) -> dict[str, Any]:
    """The ``card`` object of the JSON output.

    :param contents: what was read
    """
    issuer, holder = contents.issuer, contents.holder
    info = holder.ssn_info if holder else None
    return {
        "region_code": issuer.region_code,
        "ssn": holder.ssn if holder else None,
        "card_number": issuer.card_number,
        "card_id": issuer.card_id.hex().upper(),
        "name": holder.name if holder else None,
        "sex": holder.sex if holder else None,
        "ethnicity": holder.ethnicity if holder else None,
        "birthplace": holder.birthplace if holder else None,
        "birth_date": _date(holder.birth_date) if holder else None,
        "issue_date": _date(issuer.issue_date),
        "expiry_date": _date(issuer.expiry_date),
        "spec_version": issuer.spec_version,
        "generation": contents.generation.value,
        "category": issuer.category,
        "algorithm": contents.algorithm.value,
        "atr_historical": contents.historical.hex().upper(),
        "card_number_valid": issuer.card_number_valid,
        "ssn_kind": info.kind.value if info else None,
        "ssn_check_valid": info.check_valid if info else None,
        "sex_derived": holder.sex_derived if holder else False,
        "birth_date_derived": holder.birth_date_derived if holder else False,
    }


def result_json(result: ReadResult) -> dict[str, Any]:
    """The whole JSON object of ``sscard read --format json``.

    :param result: the read result
    """
    out: dict[str, Any] = {
        "ok": result.ok,
        "code": result.code,
        "reason": result.failure.reason if result.failure else "",
        "reader": result.reader,
        "protocol": result.protocol,
        "security_module": result.module or None,
        "terminal_number": result.terminal_number,
    }
    if result.contents is not None:
        out["card"] = card_fields(result.contents)
        out["unreadable"] = dict(result.contents.unreadable)
    out["warnings"] = list(result.warnings)
    return out


def result_table(result: ReadResult) -> str:
    """A human-readable rendering, one item per line, Chinese label first.

    :param result: the read result
    """
    lines: list[str] = []
    if result.contents is not None:
        card = card_fields(result.contents)
        unreadable = result.contents.unreadable
        rows = [
            ("发卡地区 region", "region_code", None),
            ("社会保障号码 SSN", "ssn", None),
            ("卡号 card number", "card_number", None),
            ("卡识别码 card id", "card_id", None),
            ("姓名 name", "name", None),
            ("性别 sex", "sex", SEX_NAMES),
            ("民族 ethnicity", "ethnicity", ETHNICITY_NAMES),
            ("出生地 birthplace", "birthplace", None),
            ("出生日期 birth date", "birth_date", None),
            ("发卡日期 issued", "issue_date", None),
            ("有效期 expires", "expiry_date", None),
            ("规范版本 spec version", "spec_version", None),
            ("卡类别 category", "category", CATEGORY_NAMES),
            ("算法 algorithm", "algorithm", None),
            ("卡复位信息 ATR historical", "atr_historical", None),
        ]
        for label, key, names in rows:
            value = card[key]
            if key in unreadable:
                shown = "(unreadable)"
            elif value is None:
                shown = "-"
            else:
                shown = f"{value} {names.get(value, '')}".strip() if names else str(value)
                if card.get(f"{key}_derived"):
                    shown += " (from SSN)"
            lines.append(f"{label:<24} {shown}")
        if result.module:
            checked = f"{result.module}, card genuine (internal authentication)"
            lines.append(f"{'安全模块 security module':<24} {checked}")
            lines.append(f"{'终端机编号 terminal no.':<24} {result.terminal_number}")
    lines.extend(f"warning: {warning}" for warning in result.warnings)
    if result.failure is not None:
        lines.append(f"error {result.failure.code}: {result.failure.reason}")
    return "\n".join(lines)


def national_string(result: ReadResult, device_number: str = "") -> str:
    """The ``iReadCardBas`` line of a successful read.

    :param result: a successful read result (its terminal number comes from the module)
    :param device_number: 终端设备号 from the settings
    :raises ValueError: when the read did not succeed
    """
    if result.contents is None or result.failure is not None:
        raise ValueError("no complete read to format")
    return ireadcardbas(
        result.contents, terminal_number=result.terminal_number, device_number=device_number
    )
