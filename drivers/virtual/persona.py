"""Persona files: synthetic card holders for the emulated social security card.

A persona is a TOML file (see ``drivers/virtual/personas/``) with a ``[card]`` table (EF05 and
the ATR), a ``[holder]`` table (EF06) and optionally ``[raw_records]`` that replace a record's bytes
verbatim, for cards that misbehave. An item that is left out of the file is left ``FF`` on the
card, as real cards leave unset items. Every persona is fictional and carries valid check digits.

Two optional tables describe the card's secrets (spec doc §3.4, §5)::

    [keys]
    forged = false        # true: the card's keys do not derive from the roots (a forged card)
    rkssse_tries = 3      # RKSSSE try counter, 1-15

    [pin]
    value = "123456"      # 4-16 digits, as a string
    tries = 3             # PIN try counter, 1-15

A persona without ``[pin]`` has no PIN (the card answers ``6A88`` to VERIFY).

An optional ``[medical]`` table fills EF05 医疗保险基本信息 of DF04 (spec doc §2.6), keyed
by the field names of :data:`apdu.medical.MEDICAL_FIELDS`; the institution fields are lists
of up to three (maternity: two) codes filling the slots in order. A persona without it has no
DF04 (the card answers ``6A82`` to its SELECT)::

    [medical]
    insurance_type = "11000000"        # 险种类型及标识 an8
    insured_region = "440100"          # 参保地 cn3
    person_category = "11"             # 参保人员类别 cn1
    account_opened = 2012-07-01        # 个人账户建立日期
    designated_institutions = ["H44010600011", "H44010600023"]

An optional ``[transit]`` table gives the card a transit e-purse next to SSSE (balance,
offline sequence, serial …; :func:`drivers.virtual.transit_purse.parse_transit`), and an
optional ``[medical_account]`` table a medical account in DF04 (balances, sequence;
:func:`drivers.virtual.medical_account.parse_medical_account`); a persona without them has
neither.

``[raw_records]`` addresses are ``EF05.tt``, ``EF06.tt`` or ``DF04.EF05.tt``; an empty string
removes the record (the card then answers ``6A83``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apdu import files, medical, records
from apdu.tlv import encode_simple
from config.schema import CONTROL
from config.tomlfile import read_toml
from drivers.virtual.medical_account import MedicalAccount, parse_medical_account
from drivers.virtual.tables import checked_table
from drivers.virtual.transit_purse import TransitAccount, parse_transit

ALGORITHM_IDS = {"des": 0x01, "ssf33": 0x02, "sm4": 0x03, "none": None}
DEFAULT_MAKER = bytes.fromhex("8660")  # T6–T7: card-maker id (fictional)

_CARD_KEYS = {
    "spec_version",
    "algorithm",
    "city_code",
    "serial",
    "auth_code",
    "category",
    "init_org",
    "issue_date",
    "expiry_date",
    "card_number",
    "atr_historical",
}
_HOLDER_KEYS = set(records.HOLDER_ITEMS)
_DATE_KEYS = {"issue_date", "expiry_date", "birth_date"}
_TOP_KEYS = {
    "description",
    "card",
    "holder",
    "raw_records",
    "keys",
    "pin",
    "medical",
    "transit",
    "medical_account",
}
_KEYS_KEYS = {"forged", "rkssse_tries"}
_PIN_KEYS = {"value", "tries"}
MAX_TRIES = 15  # a try counter is the low nibble of 63Cx (spec doc §5)
DEFAULT_TRIES = 3
MIN_PIN_DIGITS = 4
MAX_PIN_DIGITS = 16  # VERIFY Lc ≤ 08 (spec doc §5)


class PersonaError(ValueError):
    """A persona file that does not describe a card."""


def encode_an(text: str | None, length: int) -> bytes:
    """Encode an ``an`` item: GB18030 bytes right-padded with ``00``; ``None`` is all ``FF``.

    :param text: the value, or ``None`` for an unset item
    :param length: the item length in bytes
    :raises PersonaError: when the text is longer than the item
    """
    if text is None:
        return b"\xff" * length
    raw = text.encode("gb18030")
    if len(raw) > length:
        raise PersonaError(f"{text!r} needs {len(raw)} bytes, the item holds {length}")
    return raw.ljust(length, b"\x00")


def encode_cn(digits: str | None, length: int) -> bytes:
    """Encode a ``cn`` item: BCD (hex digits allowed) right-padded with ``F``.

    :param digits: the digits, or ``None`` for an unset item
    :param length: the item length in bytes
    :raises PersonaError: when the digits do not fit or are not hex
    """
    if digits is None:
        return b"\xff" * length
    if len(digits) > 2 * length:
        raise PersonaError(f"{digits!r} does not fit in {length} bytes")
    try:
        return bytes.fromhex(digits.ljust(2 * length, "F"))
    except ValueError:
        raise PersonaError(f"{digits!r} is not a cn value") from None


def encode_date(value: dt.date | None) -> bytes:
    """Encode a date as BCD ``YYYYMMDD``; ``None`` is ``FFFFFFFF``.

    :param value: the date
    """
    return b"\xff" * 4 if value is None else bytes.fromhex(value.strftime("%Y%m%d"))


def split_name(name: str | None) -> tuple[bytes, bytes]:
    """Split a name into the 30-byte tag 09 and the 20-byte extension tag 4E.

    :param name: the holder's name, or ``None``
    :raises PersonaError: when the name needs more than 50 bytes
    """
    if name is None:
        return b"\xff" * 30, b"\x00" * 20
    raw = name.encode("gb18030")
    if len(raw) > 50:
        raise PersonaError(f"name needs {len(raw)} bytes; 09 and 4E hold 50")
    return raw[:30].ljust(30, b"\x00"), raw[30:].ljust(20, b"\x00")


def default_historical(city_code: str, serial: bytes) -> bytes:
    """Historical bytes in the layout of real SSCs: 5 bytes, maker, region, serial (13 bytes).

    :param city_code: six-digit city code; its first four digits become T8–T9
    :param serial: the four-byte card serial, T10–T13
    """
    return bytes.fromhex("00814A4446") + DEFAULT_MAKER + bytes.fromhex(city_code[:4]) + serial


@dataclass(frozen=True, slots=True)
class PersonaKeys:
    """The ``[keys]`` table: how the card's keys relate to the roots.

    :param forged: the keys do not derive from the roots (a forged card)
    :param rkssse_tries: the RKSSSE try counter's maximum
    """

    forged: bool = False
    rkssse_tries: int = DEFAULT_TRIES


@dataclass(frozen=True, slots=True)
class PersonaPin:
    """The ``[pin]`` table: the holder's PIN and its try counter.

    :param value: the PIN, 4–16 digits (kept out of ``repr``)
    :param tries: the try counter's maximum
    """

    value: str = field(repr=False)
    tries: int = DEFAULT_TRIES


@dataclass(frozen=True, slots=True)
class Persona:
    """An emulated card's content.

    :param name: the file stem, used in messages
    :param description: one line on who this is
    :param algorithm_id: FCI algorithm byte, ``None`` to omit tag 86
    :param historical: ATR historical bytes
    :param ef05: tag → record bytes (a whole TLV)
    :param ef06: tag → record bytes (a whole TLV)
    :param city_code: six-digit city code
    :param keys: the ``[keys]`` table (defaults when absent)
    :param pin: the ``[pin]`` table, or ``None`` for a card without a PIN
    :param medical: DF04 EF05, tag → record bytes (a whole TLV); ``None`` for a card without
        DF04
    :param transit: the transit e-purse, ``None`` for a card without one
    :param medical_account: the DF04 medical account, ``None`` for a card without one
    """

    name: str
    description: str
    algorithm_id: int | None
    historical: bytes
    ef05: dict[int, bytes]
    ef06: dict[int, bytes]
    city_code: str
    keys: PersonaKeys = field(default_factory=PersonaKeys)
    pin: PersonaPin | None = None
    medical: dict[int, bytes] | None = None
    transit: TransitAccount | None = None
    medical_account: MedicalAccount | None = None

    @property
    def generation(self) -> records.Generation:
        """The generation the card announces in EF05 tag 03."""
        raw = self.ef05.get(records.TAG_SPEC_VERSION, b"")
        return records.Generation.from_version(records.decode_an(records.TAG_SPEC_VERSION, raw[2:]))


def _require(table: dict[str, Any], key: str, where: str) -> Any:
    if key not in table:
        raise PersonaError(f"{where}: missing required key {key!r}")
    return table[key]


def _check_keys(table: dict[str, Any], allowed: set[str], where: str) -> None:
    checked_table(table, allowed, where, PersonaError)


def _date(value: Any, where: str) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    raise PersonaError(f"{where}: expected a TOML date like 2030-01-31, got {value!r}")


def _tries(table: dict[str, Any], key: str, where: str) -> int:
    value = table.get(key, DEFAULT_TRIES)
    if isinstance(value, bool) or not isinstance(value, int):
        raise PersonaError(f"{where}: {key} must be an integer, got {type(value).__name__}")
    if not 1 <= value <= MAX_TRIES:
        raise PersonaError(f"{where}: {key} must be 1-{MAX_TRIES}, got {value}")
    return value


def parse_keys(table: Any, name: str = "persona") -> PersonaKeys:
    """Validate a ``[keys]`` table.

    :param table: the table from the document
    :param name: a label for messages
    :raises PersonaError: for a non-table, unknown keys or values of the wrong type
    """
    where = f"{name} [keys]"
    table = checked_table(table, _KEYS_KEYS, where, PersonaError)
    forged = table.get("forged", False)
    if not isinstance(forged, bool):
        raise PersonaError(f"{where}: forged must be true or false, got {type(forged).__name__}")
    return PersonaKeys(forged, _tries(table, "rkssse_tries", where))


def parse_pin(table: Any, name: str = "persona") -> PersonaPin:
    """Validate a ``[pin]`` table; messages never repeat the PIN.

    :param table: the table from the document
    :param name: a label for messages
    :raises PersonaError: for a non-table, unknown keys, a missing or malformed value
    """
    where = f"{name} [pin]"
    table = checked_table(table, _PIN_KEYS, where, PersonaError)
    value = _require(table, "value", where)
    if not isinstance(value, str):
        raise PersonaError(f'{where}: value must be a quoted string like "123456"')
    if not (value.isascii() and value.isdigit()) or not (
        MIN_PIN_DIGITS <= len(value) <= MAX_PIN_DIGITS
    ):
        raise PersonaError(f"{where}: value must be {MIN_PIN_DIGITS}-{MAX_PIN_DIGITS} digits")
    return PersonaPin(value, _tries(table, "tries", where))


def _medical_text(value: Any, item: medical.MedicalItem, where: str) -> bytes:
    if not isinstance(value, str):
        raise PersonaError(f"{where}: must be a quoted string, got {type(value).__name__}")
    cn = item.encoding is medical.ItemEncoding.CN
    if cn and not (value.isascii() and value.isdigit()):
        raise PersonaError(f"{where}: {item.label} is cn, decimal digits only")
    if not cn and not (value.isascii() and value.isprintable()):
        raise PersonaError(f"{where}: {item.label} is an, printable ASCII only")
    try:
        return encode_cn(value, item.length) if cn else encode_an(value, item.length)
    except PersonaError as exc:
        raise PersonaError(f"{where}: {exc}") from None


def parse_medical(table: Any, name: str = "persona") -> dict[int, bytes]:
    """Validate a ``[medical]`` table and build every DF04 EF05 record (unset items ``FF``).

    :param table: the table from the document
    :param name: a label for messages
    :raises PersonaError: for a non-table, unknown keys, values of the wrong type, too many
        institution codes or a value that does not fit its item
    """
    where = f"{name} [medical]"
    table = checked_table(table, set(medical.MEDICAL_FIELDS), where, PersonaError)
    values: dict[int, bytes] = {}
    for field_name, tags in medical.FIELD_TAGS.items():
        value = table.get(field_name)
        key = f"{where}: {field_name}"
        if value is None:
            continue
        if len(tags) > 1:
            if not isinstance(value, list):
                raise PersonaError(f"{key}: must be a list of codes")
            if len(value) > len(tags):
                raise PersonaError(f"{key}: at most {len(tags)} codes, got {len(value)}")
            for tag, code in zip(tags, value, strict=False):
                values[tag] = _medical_text(code, medical.MEDICAL_ITEMS[tag], key)
            continue
        item = medical.MEDICAL_ITEMS[tags[0]]
        if item.encoding is medical.ItemEncoding.DATE:
            values[item.tag] = encode_date(_date(value, key))
        else:
            values[item.tag] = _medical_text(value, item, key)
    records: dict[int, bytes] = {}
    for tag, item in medical.MEDICAL_ITEMS.items():
        raw = values.get(tag, b"\xff" * item.length)
        records[tag] = encode_simple(tag, raw)
    return records


def parse_persona(data: dict[str, Any], name: str = "persona") -> Persona:
    """Build a persona from a parsed TOML document.

    :param data: the document
    :param name: a label for messages
    :raises PersonaError: for unknown keys, missing keys or values that do not fit
    """
    _check_keys(data, _TOP_KEYS, name)
    card = _table(data, "card", name, required=True)
    holder = _table(data, "holder", name)
    _check_keys(card, _CARD_KEYS, f"{name} [card]")
    _check_keys(holder, _HOLDER_KEYS, f"{name} [holder]")
    _check_text(card, f"{name} [card]")
    _check_text(holder, f"{name} [holder]")
    _check_text({"description": data.get("description")}, name)
    algorithm = card.get("algorithm", "des")
    if algorithm not in ALGORITHM_IDS:
        raise PersonaError(f"{name}: algorithm must be one of {sorted(ALGORITHM_IDS)}")
    city = str(_require(card, "city_code", f"{name} [card]"))
    if len(city) != 6 or not (city.isascii() and city.isdigit()):
        raise PersonaError(f"{name}: city_code must be six digits")
    serial = _hex(_require(card, "serial", f"{name} [card]"), "serial", name)
    auth = _hex(card.get("auth_code", "FFFFFFFF"), "auth_code", name)
    if len(serial) != 4 or len(auth) != 4:
        raise PersonaError(f"{name}: serial and auth_code are four bytes of hex")
    card_id = bytes.fromhex(city) + files.RID_SSC + serial + auth
    hist_hex = card.get("atr_historical")
    historical = (
        _hex(hist_hex, "atr_historical", name) if hist_hex else default_historical(city, serial)
    )

    def tlv(tag: int, value: bytes) -> bytes:
        return encode_simple(tag, value)

    ef05 = {
        records.TAG_CARD_ID: tlv(records.TAG_CARD_ID, card_id),
        records.TAG_CATEGORY: tlv(records.TAG_CATEGORY, encode_an(card.get("category"), 1)),
        records.TAG_SPEC_VERSION: tlv(
            records.TAG_SPEC_VERSION, encode_an(card.get("spec_version", ""), 4)
        ),
        records.TAG_INIT_ORG: tlv(records.TAG_INIT_ORG, encode_cn(card.get("init_org"), 12)),
        records.TAG_ISSUE_DATE: tlv(
            records.TAG_ISSUE_DATE, encode_date(_date(card.get("issue_date"), name))
        ),
        records.TAG_EXPIRY_DATE: tlv(
            records.TAG_EXPIRY_DATE, encode_date(_date(card.get("expiry_date"), name))
        ),
        records.TAG_CARD_NUMBER: tlv(
            records.TAG_CARD_NUMBER, encode_an(card.get("card_number"), 9)
        ),
    }
    name_09, name_4e = split_name(holder.get("name"))
    # EF06 through the one item → tag table; an item's values in the order of its tags
    values = {
        "ssn": (encode_an(holder.get("ssn"), 18),),
        "name": (name_09, name_4e),
        "sex": (encode_an(holder.get("sex"), 1),),
        "ethnicity": (encode_cn(holder.get("ethnicity"), 1),),
        "birthplace": (encode_cn(holder.get("birthplace"), 3),),
        "birth_date": (encode_date(_date(holder.get("birth_date"), name)),),
    }
    ef06 = {
        tag: tlv(tag, value)
        for item, tags in records.HOLDER_ITEMS.items()
        for tag, value in zip(tags, values[item], strict=True)
    }
    persona = Persona(
        name=name,
        description=str(data.get("description", "")),
        algorithm_id=ALGORITHM_IDS[algorithm],
        historical=historical,
        ef05=ef05,
        ef06=ef06,
        city_code=city,
        keys=parse_keys(data.get("keys", {}), name),
        pin=parse_pin(data["pin"], name) if "pin" in data else None,
        medical=parse_medical(data["medical"], name) if "medical" in data else None,
        transit=_sub(parse_transit, data, "transit", city, name),
        medical_account=_sub(parse_medical_account, data, "medical_account", city, name),
    )
    if persona.generation == records.Generation.V1:
        del ef06[records.TAG_NAME_EXTENSION]  # 4E exists from 2.0 on
    for address, hex_bytes in _table(data, "raw_records", name).items():
        _apply_raw(persona, address, hex_bytes, name)
    return persona


def _sub(parse: Any, data: dict[str, Any], key: str, city: str, name: str) -> Any:
    """Parse an optional payment table, its errors as :class:`PersonaError`."""
    if key not in data:
        return None
    try:
        return parse(data[key], city, name)
    except ValueError as exc:
        raise PersonaError(str(exc)) from None


def _table(data: dict[str, Any], key: str, name: str, *, required: bool = False) -> dict[str, Any]:
    """A sub-table of the document, empty when absent (unless required)."""
    value = _require(data, key, name) if required else data.get(key, {})
    if not isinstance(value, dict):
        raise PersonaError(f"{name}: [{key}] must be a table")
    return value


def _check_text(table: dict[str, Any], where: str) -> None:
    """Every value but the dates is a quoted string without control characters (a record
    with odd bytes is written with ``[raw_records]``)."""
    for key, value in table.items():
        if value is None or key in _DATE_KEYS:
            continue
        if not isinstance(value, str) or CONTROL.search(value):
            raise PersonaError(f"{where}: {key} must be a quoted string without control characters")


def _hex(value: str, key: str, name: str) -> bytes:
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise PersonaError(f"{name}: {key} must be hex bytes") from None


def _apply_raw(persona: Persona, address: str, hex_bytes: str, name: str) -> None:
    where = f"{name} [raw_records]: {address!r}"
    if not isinstance(hex_bytes, str):
        raise PersonaError(f"{where} must be a quoted string of hex bytes")
    files = {"EF05": persona.ef05, "EF06": persona.ef06}
    if persona.medical is not None:
        files["DF04.EF05"] = persona.medical
    try:
        path, tag_hex = address.upper().rsplit(".", 1)
        target = files[path]
        tag = int(tag_hex, 16)
        raw = bytes.fromhex(hex_bytes)
    except (ValueError, KeyError):
        raise PersonaError(
            f"{where} must be EF05.tt, EF06.tt or DF04.EF05.tt (with a [medical] table) "
            "with hex bytes"
        ) from None
    if raw:
        target[tag] = raw
    else:  # the card has no such record at all
        target.pop(tag, None)


def load_persona(path: str | Path) -> Persona:
    """Read a persona TOML file.

    :param path: the file
    :raises PersonaError: when the file cannot be read, is not UTF-8, not valid TOML, nested
        too deeply or not a persona
    """
    path = Path(path)
    return parse_persona(read_toml(path, PersonaError, what="persona file"), path.stem)
