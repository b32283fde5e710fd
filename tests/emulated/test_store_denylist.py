"""The deny list of the offline store on real SQLite files: snapshots, deltas, idempotency,
versions, signatures, rollback, effective dates, bad lines named by number, and a million
entries.

Lists are written line by line and signed with an Ed25519 key generated for the module; the
store is a real file under ``tmp_path``, checked behind its back with a raw connection.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from store_support import (
    NOON,
    PEPPER,
    Clock,
    Platform,
    add,
    entry,
    h,
    header,
    raw,
    remove,
    sign,
    write_list,
)

from offline_store import (
    DenyListError,
    DenyReason,
    DenySignatureError,
    DenyVersionError,
    Store,
    StoreError,
    accept_unsigned,
    pepper_check,
)

pytestmark = pytest.mark.emulated


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[Store]:
    with Store.open(tmp_path / "store.db", pepper=PEPPER, clock=clock) as opened:
        yield opened


@pytest.fixture(scope="module")
def platform() -> Platform:
    return Platform.generate()


def listed(store: Store, *numbers: int, day: dt.date = dt.date(2026, 12, 31)) -> list[bool]:
    return [store.deny.lookup(h(n), day) is not None for n in numbers]


def test_a_snapshot_is_imported_and_looked_up(store, tmp_path, platform) -> None:
    path = platform.snapshot(
        tmp_path,
        7,
        [entry(1, "lost", "2026-11-20"), entry(2, "cancelled", "2026-10-01"), entry(3, "fraud")],
    )
    result = store.deny.import_file(path, platform.verify)
    assert (result.version, result.kind, result.file_entries, result.listed) == (
        7,
        "snapshot",
        3,
        3,
    )
    assert not result.already_applied
    hit = store.deny.lookup(h(2))
    assert hit is not None
    assert (hit.card_hash, hit.reason, hit.effective, hit.version) == (
        h(2),
        DenyReason.CANCELLED,
        dt.date(2026, 10, 1),
        7,
    )
    assert store.deny.lookup(h(4)) is None
    status = store.deny.status()
    assert (status.version, status.previous, status.entries) == (7, None, 3)
    assert status.created == dt.datetime(2026, 11, 29, 0, 0, tzinfo=dt.UTC)
    assert status.imported_at == dt.datetime.fromtimestamp(NOON, dt.UTC)


def test_before_any_import_nothing_is_listed_and_status_says_so(store) -> None:
    assert store.deny.lookup(h(1)) is None
    status = store.deny.status()
    assert (status.version, status.previous, status.entries, status.created) == (
        None,
        None,
        0,
        None,
    )


def test_a_lookup_needs_a_card_hash(store) -> None:
    with pytest.raises(StoreError, match="64 lowercase hex"):
        store.deny.lookup("D2143569X")


def test_importing_the_same_file_again_changes_nothing_and_says_so(
    store, tmp_path, platform, clock
) -> None:
    path = platform.snapshot(tmp_path, 7, [1, 2])
    store.deny.import_file(path, platform.verify)
    clock.now += 3600
    again = store.deny.import_file(path, platform.verify)
    assert again.already_applied
    assert (again.version, again.listed) == (7, 2)
    status = store.deny.status()
    assert status.imported_at == dt.datetime.fromtimestamp(NOON, dt.UTC)  # not re-imported
    assert status.previous is None  # version 7 did not become its own previous


def test_a_delta_adds_changes_and_removes(store, tmp_path, platform) -> None:
    store.deny.import_file(platform.snapshot(tmp_path, 7, [1, 2, 3]), platform.verify)
    ops = [add(4, "fraud"), add(2, "replaced", "2026-11-25"), remove(3)]
    result = store.deny.import_file(platform.delta(tmp_path, 8, 7, ops), platform.verify)
    assert (result.version, result.kind, result.base_version, result.listed) == (8, "delta", 7, 3)
    assert listed(store, 1, 2, 3, 4) == [True, True, False, True]
    changed = store.deny.lookup(h(2))
    assert changed is not None
    assert (changed.reason, changed.effective, changed.version) == (
        DenyReason.REPLACED,
        dt.date(2026, 11, 25),
        8,
    )
    status = store.deny.status()
    assert (status.version, status.previous, status.entries) == (8, 7, 3)
    again = store.deny.import_file(platform.delta(tmp_path, 8, 7, ops), platform.verify)
    assert again.already_applied


def test_a_delta_on_another_base_is_refused_and_changes_nothing(store, tmp_path, platform) -> None:
    store.deny.import_file(platform.snapshot(tmp_path, 7, [1, 2]), platform.verify)
    before = store.deny.status()
    bad = platform.delta(tmp_path, 9, 6, [add(5), remove(1)])
    with pytest.raises(DenyVersionError, match=r"applies to version 6.*active version is 7"):
        store.deny.import_file(bad, platform.verify)
    assert store.deny.status() == before
    assert listed(store, 1, 2, 5) == [True, True, False]


def test_a_delta_before_any_snapshot_is_refused(store, tmp_path, platform) -> None:
    with pytest.raises(DenyVersionError, match="import a snapshot first"):
        store.deny.import_file(platform.delta(tmp_path, 2, 1, [add(1)]), platform.verify)
    assert store.deny.status().version is None


def test_an_older_list_is_refused_unless_it_was_applied_before(store, tmp_path, platform) -> None:
    seven = platform.snapshot(tmp_path, 7, [1])
    store.deny.import_file(seven, platform.verify)
    store.deny.import_file(platform.snapshot(tmp_path, 9, [2]), platform.verify)
    # an old list that was applied and superseded: nothing to do, and said so
    assert store.deny.import_file(seven, platform.verify).already_applied
    # an old list never seen here: a replay that could re-admit cards
    eight = platform.snapshot(tmp_path, 8, [1, 3])
    with pytest.raises(DenyVersionError, match="older than the active version 9"):
        store.deny.import_file(eight, platform.verify)
    assert store.deny.status().version == 9
    assert listed(store, 1, 2, 3) == [False, True, False]


def test_the_same_version_with_other_content_is_refused(store, tmp_path, platform) -> None:
    store.deny.import_file(platform.snapshot(tmp_path, 7, [1]), platform.verify)
    other = write_list(
        tmp_path / "other-7.jsonl", header("snapshot", 7, 1), [entry(2)], platform.key
    )
    with pytest.raises(DenyVersionError, match="already active with different content"):
        store.deny.import_file(other, platform.verify)
    assert listed(store, 1, 2) == [True, False]


def test_a_bad_signature_changes_nothing(store, tmp_path, platform) -> None:
    store.deny.import_file(platform.snapshot(tmp_path, 1, [1]), platform.verify)
    before = store.deny.status()
    forged = Platform.generate().snapshot(tmp_path, 2, [2])
    with pytest.raises(DenySignatureError, match="does not verify"):
        store.deny.import_file(forged, platform.verify)
    # a signed file altered after signing
    altered = platform.snapshot(tmp_path, 3, [3])
    altered.write_bytes(altered.read_bytes().replace(b'"lost"', b'"fraud"'))
    with pytest.raises(DenySignatureError, match="does not verify"):
        store.deny.import_file(altered, platform.verify)
    # no signature, and a signature file of the wrong size
    unsigned = platform.snapshot(tmp_path, 4, [4], signed=False)
    with pytest.raises(DenySignatureError, match="no detached signature"):
        store.deny.import_file(unsigned, platform.verify)
    unsigned.with_name(unsigned.name + ".sig").write_bytes(b"\0" * 63)
    with pytest.raises(DenySignatureError, match="64-byte"):
        store.deny.import_file(unsigned, platform.verify)
    assert store.deny.status() == before
    assert listed(store, 1, 2, 3, 4) == [True, False, False, False]


def test_verify_sees_the_exact_file_bytes_before_anything_is_applied(
    store, tmp_path, platform
) -> None:
    path = platform.snapshot(tmp_path, 1, [1])
    seen: list[tuple[bytes, bytes | None, int | None]] = []

    def spy(data: bytes, sig: bytes | None) -> None:
        seen.append((data, sig, store.deny.status().version))

    store.deny.import_file(path, spy)
    assert seen == [(path.read_bytes(), path.with_name(path.name + ".sig").read_bytes(), None)]


def test_an_unsigned_import_is_possible_only_with_the_development_verifier(
    store, tmp_path, caplog
) -> None:
    path = write_list(tmp_path / "dev.jsonl", header("snapshot", 1, 1), [entry(1)])
    with caplog.at_level("WARNING", logger="offline_store.denylist"):
        store.deny.import_file(path, accept_unsigned)
    assert "event=deny_import_unsigned" in caplog.text
    assert listed(store, 1) == [True]


def test_rollback_of_a_delta_restores_the_previous_version(store, tmp_path, platform) -> None:
    store.deny.import_file(platform.snapshot(tmp_path, 7, [1, 2, 3]), platform.verify)
    ops = [add(4), add(2, "replaced"), remove(3)]
    store.deny.import_file(platform.delta(tmp_path, 8, 7, ops), platform.verify)
    assert store.deny.rollback() == 7
    assert listed(store, 1, 2, 3, 4) == [True, True, True, False]
    reverted = store.deny.lookup(h(2))
    assert reverted is not None
    assert (reverted.reason, reverted.effective, reverted.version) == (
        DenyReason.LOST,
        dt.date(2026, 11, 20),
        7,
    )
    status = store.deny.status()
    assert (status.version, status.previous, status.entries) == (7, None, 3)
    with pytest.raises(DenyVersionError, match="no previous"):
        store.deny.rollback()
    # the rolled-back delta applies again
    again = store.deny.import_file(platform.delta(tmp_path, 8, 7, ops), platform.verify)
    assert not again.already_applied
    assert listed(store, 1, 2, 3, 4) == [True, True, False, True]


def test_rollback_of_a_snapshot_restores_the_previous_snapshot(store, tmp_path, platform) -> None:
    store.deny.import_file(platform.snapshot(tmp_path, 1, [1, 2]), platform.verify)
    store.deny.import_file(platform.snapshot(tmp_path, 2, [2, 3]), platform.verify)
    assert listed(store, 1, 2, 3) == [False, True, True]
    assert store.deny.rollback() == 1
    assert listed(store, 1, 2, 3) == [True, True, False]
    assert store.deny.status().entries == 2


def test_one_previous_version_is_kept_and_the_rest_dropped(store, tmp_path, platform) -> None:
    store.deny.import_file(platform.snapshot(tmp_path, 1, [1]), platform.verify)
    store.deny.import_file(platform.delta(tmp_path, 2, 1, [add(2)]), platform.verify)
    store.deny.import_file(platform.snapshot(tmp_path, 3, [3]), platform.verify)
    store.deny.import_file(platform.snapshot(tmp_path, 4, [4]), platform.verify)
    with raw(store.path) as conn:
        versions = conn.execute("SELECT version, state FROM deny_version ORDER BY 1").fetchall()
        gens = conn.execute("SELECT COUNT(DISTINCT gen) FROM deny_entry").fetchone()[0]
        undo = conn.execute("SELECT COUNT(*) FROM deny_undo").fetchone()[0]
    assert versions == [(3, "previous"), (4, "active")]
    assert (gens, undo) == (2, 0)
    assert store.deny.rollback() == 3
    assert listed(store, 1, 2, 3, 4) == [False, False, True, False]


def test_an_entry_is_a_hit_from_its_effective_date(store, tmp_path, platform, clock) -> None:
    path = platform.snapshot(tmp_path, 1, [entry(1, "lost", "2026-12-01")])
    store.deny.import_file(path, platform.verify)
    assert store.deny.lookup(h(1), dt.date(2026, 11, 30)) is None
    assert store.deny.lookup(h(1), dt.date(2026, 12, 1)) is not None
    # without a day: today by the store's clock (local date)
    clock.now = dt.datetime(2026, 11, 29, 12, 0).timestamp()
    assert store.deny.lookup(h(1)) is None
    clock.now = dt.datetime(2026, 12, 2, 12, 0).timestamp()
    assert store.deny.lookup(h(1)) is not None


def test_entries_in_any_json_spelling_give_the_same_list(store, tmp_path, platform) -> None:
    lines = [
        f'{{"effective":"2026-11-20","reason":"lost","hash":"{h(1)}"}}',
        f'{{ "hash" : "{h(2)}" , "reason" : "fra\\u0075d" , "effective" : "2026-11-21" }}\r',
    ]
    path = write_list(tmp_path / "odd.jsonl", header("snapshot", 1, 2), lines, platform.key)
    store.deny.import_file(path, platform.verify)
    second = store.deny.lookup(h(2))
    assert second is not None
    assert (second.reason, second.effective) == (DenyReason.FRAUD, dt.date(2026, 11, 21))
    assert listed(store, 1) == [True]


def bad_snapshot_cases() -> list[tuple[list[str], str]]:
    head = json.dumps(header("snapshot", 2, 3))
    good = [json.dumps(entry(n)) for n in (10, 11, 12)]

    def with_line(index: int, line: str) -> list[str]:
        lines = [head, *good]
        lines[index] = line
        return lines

    return [
        (with_line(2, f'{{"hash": "{h(11)}", "reason": "lost"'), "line 3: not JSON"),
        (with_line(1, json.dumps(entry(10) | {"hash": h(10).upper()})), "line 2: hash must be"),
        (with_line(3, json.dumps(entry(12) | {"hash": h(12)[:63]})), "line 4: hash must be"),
        (with_line(2, json.dumps(entry(11, "stolen"))), "line 3: reason must be one of"),
        (with_line(2, json.dumps(entry(11, effective="2026-02-30"))), "line 3: effective is not"),
        (with_line(2, json.dumps(entry(11, effective="20261120"))), "line 3: effective is not"),
        (with_line(3, json.dumps({"hash": h(12), "reason": "lost"})), "line 4: keys: missing"),
        (with_line(3, json.dumps(entry(12) | {"name": "x"})), "line 4: keys: missing [], unknown"),
        (with_line(2, json.dumps([h(11), "lost"])), "line 3: not a JSON object"),
        (with_line(2, ""), "line 3: empty line"),
        (with_line(3, json.dumps(entry(10))), "line 4: the same hash appears twice"),
        ([head, *good[:2]], "the file has 2 entry lines, the header says 3"),
        ([head, *good, json.dumps(entry(13))], "line 5: more entry lines"),
        ([head, *good, ""], "line 5: empty line after the last entry"),
        ([json.dumps(header("snapshot", 2, 3, format="sscard-deny/2")), *good], "line 1: format"),
        (
            [json.dumps(header("snapshot", 2, 3, created="2026-11-29T08:00:00")), *good],
            "UTC offset",
        ),
        ([json.dumps(header("snapshot", 0, 3)), *good], "line 1: version must be a positive"),
        ([json.dumps(header("snapshot", True, 3)), *good], "line 1: version must be a positive"),
        ([json.dumps(header("snapshot", "2", 3)), *good], "line 1: version must be a positive"),
        ([json.dumps(header("snapshot", 2, 3, base=1)), *good], "a snapshot has no base_version"),
        ([json.dumps(header("snapshot", 2, 3, signer="x")), *good], "unknown ['signer']"),
        ([json.dumps(header("list", 2, 3)), *good], "line 1: kind must be"),
        ([json.dumps(header("snapshot", 2, 3, pepper_check="XY")), *good], "pepper_check must be"),
        (["\ufeff" + head, *good], "line 1: not JSON"),
        ([head.replace("snapshot", "snapsh\xf6t"), *good], "line 1: kind must be"),
    ]


@pytest.mark.parametrize(("lines", "problem"), bad_snapshot_cases())
def test_a_bad_snapshot_line_is_named_and_nothing_changes(
    store, tmp_path, platform, lines, problem
) -> None:
    store.deny.import_file(platform.snapshot(tmp_path, 1, [1, 2]), platform.verify)
    before = store.deny.status()
    bad = write_list(tmp_path / "bad.jsonl", lines[0], lines[1:], platform.key)
    with pytest.raises(DenyListError) as caught:
        store.deny.import_file(bad, platform.verify)
    assert problem in str(caught.value)
    assert str(bad) in str(caught.value)
    assert store.deny.status() == before
    assert listed(store, 1, 2, 10, 11, 12) == [True, True, False, False, False]


@pytest.mark.parametrize(
    ("ops", "problem"),
    [
        ([add(5), {"op": "replace", "hash": h(6)}], "line 3: op must be 'add' or 'remove'"),
        ([remove(1) | {"reason": "lost"}, add(5)], "line 2: keys: missing [], unknown ['reason']"),
        ([add(5), {"op": "add", "hash": h(6), "reason": "lost"}], "line 3: keys: missing"),
        ([add(5), remove(5)], "line 3: the same hash appears twice in this delta"),
        ([add(5), remove(9)], "line 3: remove of a hash that is not listed in version 1"),
        # the delta is applied set-based; the error is still the first in file order
        ([remove(9), add(5), add(5)], "line 2: remove of a hash that is not listed in version 1"),
        ([add(5), add(5), remove(9)], "line 3: the same hash appears twice in this delta"),
        ([add(6), remove(9), {"op": "replace", "hash": h(7)}], "line 3: remove of a hash that"),
        ([add(6), remove(1), {"op": "replace", "hash": h(7)}], "line 4: op must be 'add' or"),
        ([add(6), remove(1), add(6), {"op": "x"}], "line 4: the same hash appears twice"),
        ([remove(1), add(5), remove(9), remove(1)], "line 4: remove of a hash that is not"),
        ([remove(2), add(5), remove(2), remove(9)], "line 4: the same hash appears twice"),
    ],
)
def test_a_bad_delta_line_is_named_and_nothing_changes(
    store, tmp_path, platform, ops, problem
) -> None:
    store.deny.import_file(platform.snapshot(tmp_path, 1, [1, 2]), platform.verify)
    before = store.deny.status()
    with pytest.raises(DenyListError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        store.deny.import_file(platform.delta(tmp_path, 2, 1, ops), platform.verify)
    assert store.deny.status() == before
    assert listed(store, 1, 2, 5, 6) == [True, True, False, False]


def test_a_list_hashed_with_another_pepper_is_refused(store, tmp_path, platform) -> None:
    other = platform.snapshot(tmp_path, 1, [1], pepper_check=pepper_check(b"o" * 32))
    with pytest.raises(DenyListError, match="another pepper"):
        store.deny.import_file(other, platform.verify)
    assert store.deny.status().version is None
    ours = platform.snapshot(tmp_path, 2, [1], pepper_check=pepper_check(PEPPER))
    assert store.deny.import_file(ours, platform.verify).listed == 1


def test_progress_is_reported_every_10000_entries(store, tmp_path, platform) -> None:
    path = platform.snapshot(tmp_path, 1, range(25_000))
    calls: list[tuple[int, int]] = []
    store.deny.import_file(
        path, platform.verify, progress=lambda done, total: calls.append((done, total))
    )
    assert calls == [(10_000, 25_000), (20_000, 25_000), (25_000, 25_000)]


def test_a_line_that_is_not_utf8_is_named(store, tmp_path, platform) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(
        (json.dumps(header("snapshot", 1, 1)) + "\n").encode()
        + b'{"hash": "'
        + h(1).encode()
        + b'", "reason": "lost\xe9", "effective": "2026-11-20"}\n'
    )
    sign(path, platform.key)
    with pytest.raises(DenyListError, match="line 2: not UTF-8"):
        store.deny.import_file(path, platform.verify)


def test_an_unreadable_list_is_a_clear_error(store, tmp_path, platform) -> None:
    with pytest.raises(DenyListError, match=r"cannot read deny list .*missing\.jsonl"):
        store.deny.import_file(tmp_path / "missing.jsonl", platform.verify)


def test_a_million_entries_then_a_10k_delta(tmp_path, platform) -> None:
    count = 1_000_000
    big = tmp_path / "deny-1m.jsonl"
    started = time.perf_counter()
    with big.open("w", encoding="ascii") as out:
        out.write(json.dumps(header("snapshot", 1, count)) + "\n")
        reasons = ("lost", "cancelled", "replaced", "fraud")
        for n in range(count):
            digest = hashlib.sha256(n.to_bytes(4, "big")).hexdigest()
            out.write(
                f'{{"hash": "{digest}", "reason": "{reasons[n % 4]}", '
                f'"effective": "2026-{n % 12 + 1:02d}-{n % 28 + 1:02d}"}}\n'
            )
    sign(big, platform.key)
    generated = time.perf_counter() - started
    ops = [
        {"op": "remove", "hash": hashlib.sha256(n.to_bytes(4, "big")).hexdigest()}
        for n in range(0, 10_000, 2)
    ] + [
        {
            "op": "add",
            "hash": hashlib.sha256(n.to_bytes(4, "big")).hexdigest(),
            "reason": "fraud",
            "effective": "2026-11-29",
        }
        for n in range(count, count + 5_000)
    ]
    small = write_list(tmp_path / "deny-2.jsonl", header("delta", 2, len(ops), base=1), ops)
    sign(small, platform.key)
    with Store.open(tmp_path / "big.db", pepper=PEPPER) as store:
        started = time.perf_counter()
        result = store.deny.import_file(big, platform.verify)
        imported = time.perf_counter() - started
        started = time.perf_counter()
        applied = store.deny.import_file(small, platform.verify)
        delta_time = time.perf_counter() - started
        print(
            f"\ndeny list: generate 1M {generated:.1f} s, import 1M {imported:.1f} s, "
            f"delta 10k {delta_time:.2f} s"
        )
        assert result.listed == count
        assert applied.listed == count
        day = dt.date(2027, 1, 1)

        def hit(n: int) -> bool:
            return (
                store.deny.lookup(hashlib.sha256(n.to_bytes(4, "big")).hexdigest(), day) is not None
            )

        assert [hit(0), hit(1), hit(9_998), hit(9_999), hit(10_000), hit(count - 1)] == [
            False,
            True,
            False,
            True,
            True,
            True,
        ]
        assert [hit(count), hit(count + 4_999), hit(count + 5_000)] == [True, True, False]
        assert store.deny.rollback() == 1
        assert [hit(0), hit(count)] == [True, False]
