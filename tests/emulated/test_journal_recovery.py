"""Recovering a damaged journal from the platform's copy (:mod:`offline_store.recovery`): the
rows of a real store, as uploaded, checked against the chain the store still vouches for."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from offline_store import JournalEntry, Store
from offline_store.chain import canonical_bytes, chain_hash, personal_aad
from offline_store.recovery import plan_recovery

KEY = bytes(range(32))
TOKEN = hashlib.sha256(b"synthetic card").hexdigest()


@pytest.fixture(scope="module")
def uploaded(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Ten rows of a real store, odd ones with personal fields, as the platform received them."""
    path = tmp_path_factory.mktemp("store") / "store.db"
    with Store.open(path, journal_key=KEY, pepper=b"p" * 32) as store:
        for n in range(10):
            store.journal.append(
                JournalEntry(
                    "gate", None, TOKEN, "accept", "ok", None,
                    personal={"room": str(n)} if n % 2 else {}, terminal_id="T1",
                )
            )  # fmt: skip
        return [
            {**row.record(), "prev_hash": row.prev_hash, "hash": row.hash}
            for row in store.journal.rows()
        ]


def _plan(uploaded: list[dict[str, Any]], fetched: list[dict[str, Any]], kept_to: int = 3) -> Any:
    return plan_recovery(
        anchor_seq=0,
        kept_to=kept_to,
        kept_hash=uploaded[kept_to - 1]["hash"],
        last_seq=10,
        fetched=fetched,
    )


def test_the_platform_rows_continue_the_chain_and_the_rest_is_lost(
    uploaded: list[dict[str, Any]],
) -> None:
    plan = _plan(uploaded, list(reversed(uploaded[:8])))  # the platform had 1-8, any order
    assert [row.seq for row in plan.fetched] == [4, 5, 6, 7, 8]
    assert (plan.kept, plan.lost, plan.refused) == (3, (9, 10), None)
    assert [row.hash for row in plan.fetched] == [row["hash"] for row in uploaded[3:8]]
    assert all(row.uploaded for row in plan.fetched)
    assert plan.summary == (
        "3 rows kept from the store, 5 re-fetched from the platform, 2 lost (seq 9-10)"
    )


def test_a_restored_personal_ciphertext_opens_with_the_terminal_key_only_for_its_row(
    uploaded: list[dict[str, Any]],
) -> None:
    row = _plan(uploaded, uploaded).fetched[0]  # seq 4, n = 3: personal fields
    assert row.personal_fields == ("room",) and row.personal_ciphertext is not None
    nonce, sealed = row.personal_ciphertext[:12], row.personal_ciphertext[12:]
    assert b"3" in AESGCM(KEY).decrypt(nonce, sealed, personal_aad(row.seq, row.uuid))
    with pytest.raises(InvalidTag):
        AESGCM(KEY).decrypt(nonce, sealed, personal_aad(row.seq + 1, row.uuid))


def test_a_row_that_does_not_hash_is_refused_and_so_is_all_after_it(
    uploaded: list[dict[str, Any]],
) -> None:
    altered = [dict(row) for row in uploaded]
    altered[5]["outcome"] = "refuse"  # seq 6, its hash left as it was
    plan = _plan(uploaded, altered)
    assert [row.seq for row in plan.fetched] == [4, 5]
    assert plan.lost == (6, 7, 8, 9, 10)
    assert plan.refused == "row 6: hash does not match the row's contents"


def test_a_well_hashed_row_that_links_elsewhere_is_refused(uploaded: list[dict[str, Any]]) -> None:
    forged = {k: v for k, v in uploaded[4].items() if k not in {"prev_hash", "hash"}}
    prev = "ab" * 32
    slipped = {**forged, "prev_hash": prev, "hash": chain_hash(prev, canonical_bytes(forged))}
    plan = _plan(uploaded, [*uploaded[3:4], slipped, *uploaded[5:]])
    assert [row.seq for row in plan.fetched] == [4]
    assert plan.refused == "row 5 does not link to the hash before it"
    assert plan.summary.endswith(
        "6 lost (seq 5-10); refused: row 5 does not link to the hash before it"
    )


def test_a_gap_in_the_platform_copy_ends_the_recovery_there(uploaded: list[dict[str, Any]]) -> None:
    plan = _plan(uploaded, [*uploaded[3:5], *uploaded[6:]])  # seq 6 never reached the platform
    assert [row.seq for row in plan.fetched] == [4, 5]
    assert (plan.lost, plan.refused) == ((6, 7, 8, 9, 10), None)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"extra": "1"}, "keys missing or unknown: ['extra']"),
        ({"amount": "x"}, "ValueError"),
        ({"personal_ct": "%%"}, "Error"),
        ({"v": "sscard-journal/2"}, "not in the journal's record form"),
    ],
)
def test_a_row_not_in_the_record_form_is_refused(
    uploaded: list[dict[str, Any]], change: dict[str, str], problem: str
) -> None:
    plan = _plan(uploaded, [{**uploaded[3], **change}, *uploaded[4:]])
    assert plan.fetched == () and plan.lost == tuple(range(4, 11))
    assert plan.refused is not None and problem in plan.refused, plan.refused


def _rows(uploaded: list[dict[str, Any]]) -> list[Any]:
    from offline_store.recovery import row_from_upload

    return [row_from_upload(raw) for raw in uploaded]


def test_rows_the_store_still_reads_past_the_damage_are_salvaged_first(
    uploaded: list[dict[str, Any]],
) -> None:
    local = _rows(uploaded)
    plan = plan_recovery(
        anchor_seq=0,
        kept_to=3,
        kept_hash=uploaded[2]["hash"],
        last_seq=10,
        fetched=uploaded[3:6],  # the platform has 4-6
        local=[local[5], local[6], local[8], local[9]],  # the file still reads 6, 7, 9, 10
    )
    assert [row.seq for row in plan.fetched] == [4, 5]
    assert (plan.salvaged, plan.lost, plan.kept) == ((6, 7), (8, 9, 10), 5)
    assert plan.summary == (
        "5 rows kept from the store, 2 re-fetched from the platform, 3 lost (seq 8-10)"
    )  # 9 and 10 read well, but link to the lost row 8: nothing is invented for them


def test_a_gap_an_earlier_recovery_declared_is_followed_over_its_seqs(
    uploaded: list[dict[str, Any]],
) -> None:
    from offline_store.chain import declared_gap

    gap = declared_gap(seq=11, first_lost=6, prev_hash=uploaded[4]["hash"], terminal_id="T1",
                       row_uuid="0b7e5d2c-1a3f-4c8e-b6d4-9e8f7a6b5c4d", wall_time_us=1,
                       monotonic_ns=1)  # fmt: skip
    as_uploaded = {**gap.record(), "prev_hash": gap.prev_hash, "hash": gap.hash}
    plan = plan_recovery(
        anchor_seq=0,
        kept_to=3,
        kept_hash=uploaded[2]["hash"],
        last_seq=11,
        fetched=[*uploaded[3:5], as_uploaded],
    )
    assert [row.seq for row in plan.fetched] == [4, 5, 11]
    assert plan.fetched[-1].lost == (6, 10) and plan.lost == ()
    forged = {**as_uploaded, "lost": ["7", "10"]}  # would hide row 6: its hash breaks
    plan = plan_recovery(anchor_seq=0, kept_to=3, kept_hash=uploaded[2]["hash"], last_seq=11,
                         fetched=[*uploaded[3:5], forged])  # fmt: skip
    assert plan.lost == tuple(range(6, 12)) and plan.refused is None  # nothing starts at 6
