"""The platform's answers the sync client reads, checked strictly (docs/sync.md).

Each check raises :class:`~sync.errors.SyncProtocolError` for an answer off the contract;
the transport treats that as a failed attempt (an answer cut short where the transport could
not tell) and retries it.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from sync.errors import RowRejection, SyncProtocolError
from sync.transport import Exchange

__all__ = ["BatchAnswer", "batch_answer", "deny_signature", "json_answer", "server_time"]


@dataclass(frozen=True, slots=True)
class BatchAnswer:
    """The answer to a journal batch (docs/sync.md §5).

    :param ack_seq: every row of the terminal up to this seq is stored
    :param accepted: rows stored by this batch
    :param duplicates: rows the platform already held
    :param rejected: rows it refused, with why
    """

    ack_seq: int
    accepted: int
    duplicates: int
    rejected: tuple[RowRejection, ...]


def json_answer(exchange: Exchange) -> Any:
    """The answer's body as JSON.

    :param exchange: the answer
    :raises SyncProtocolError: not JSON, or nested deeper than any answer of the contract
    """
    return exchange.json()


def _count(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SyncProtocolError(f"the batch answer's {key} must be a whole number ≥ 0")
    return value


def batch_answer(exchange: Exchange) -> BatchAnswer:
    """Check the answer to a batch (a malformed one is retried: it may have been cut).

    :param exchange: the answer
    :raises SyncProtocolError: not ``{"ack_seq", "accepted", "duplicates", "rejected"}``
    """
    data = json_answer(exchange)
    if not isinstance(data, dict):
        raise SyncProtocolError("the batch answer must be a JSON object")
    rejected_raw = data.get("rejected")
    if not isinstance(rejected_raw, list):
        raise SyncProtocolError("the batch answer's rejected must be a list")
    rejected: list[RowRejection] = []
    for item in rejected_raw:
        if not isinstance(item, dict):
            raise SyncProtocolError("a rejection must be an object")
        seq, code = item.get("seq"), item.get("code")
        if isinstance(seq, bool) or not isinstance(seq, int) or not isinstance(code, str):
            raise SyncProtocolError('a rejection must be {"seq": int, "code": str}')
        rejected.append(RowRejection(seq, code[:64]))
    return BatchAnswer(
        _count(data, "ack_seq"),
        _count(data, "accepted"),
        _count(data, "duplicates"),
        tuple(rejected),
    )


def server_time(exchange: Exchange) -> float:
    """The ``server_time`` of a time or heartbeat answer.

    :param exchange: the answer
    :raises SyncProtocolError: missing or not a number
    """
    data = json_answer(exchange)
    value = data.get("server_time") if isinstance(data, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SyncProtocolError("the answer's server_time must be a number")
    return float(value)


def deny_signature(header: str | None) -> bytes | None:
    """The deny list's detached signature from its header.

    :param header: ``X-Sscard-Deny-Signature``, base64
    :returns: the raw signature; ``None`` when absent and ``b""`` when not base64 (the
        verifier refuses both)
    :raises: nothing
    """
    if header is None:
        return None
    try:
        return base64.b64decode(header.strip(), validate=True)
    except (binascii.Error, ValueError):
        return b""  # not base64: a wrong signature, refused by the verifier
