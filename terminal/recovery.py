"""``sscard journal recover``: a damaged journal recovered up to its last sound row, the rest
re-fetched from the platform where it has it, the lost seqs declared (docs/offline-store.md
§5.8), as an :class:`~terminal.operator.Answer` (text lines, or one JSON document).

Check the store (:meth:`Journal.check_sound`); when it is sound there is nothing to recover.
Otherwise fetch the terminal's own rows after the last sound one (``fetch``:
:func:`sync.recovery.fetch_own_rows`), plan (:func:`offline_store.recovery.plan_recovery`) and
print the plan; with ``apply``, write it into a new file swapped in for the damaged one
(:func:`offline_store.rebuild.rebuild_store`). A plan with a refused row is never applied: the
platform holds something that does not continue the chain, and declaring it lost would hide it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from offline_store.rebuild import rebuild_store
from offline_store.recovery import RecoveryPlan, plan_recovery, seq_ranges
from terminal.operator import EXIT_FAILURE, Answer

if TYPE_CHECKING:
    from offline_store import Store
    from offline_store.rebuild import RebuildReport

#: the platform's rows after a seq, up to another (:func:`sync.recovery.fetch_own_rows`)
Fetch = Callable[[int, int], list[dict[str, Any]]]


def recover_journal(
    store: Store,
    *,
    fetch: Fetch,
    terminal_id: str,
    journal_key: bytes | None,
    apply: bool,
    as_json: bool = False,
) -> Answer:
    """Check, fetch, plan and (with ``apply``) rebuild; the answer says what was done.

    :param store: the store, opened by this command (no daemon holds it)
    :param fetch: asks the platform for the terminal's rows (called only when rows are missing)
    :param terminal_id: the terminal (the gap row names it)
    :param journal_key: the journal key (re-fetched payments are sealed with it)
    :param apply: write the plan (``--yes``); else only print it
    :param as_json: one JSON document rather than text lines
    :raises SscardError: the platform could not be asked (``[sync]`` missing, a wrong key, no
        answer), or the store could not be read or rebuilt
    """
    report = store.journal.check_sound()
    if report.ok:
        facts: dict[str, Any] = {"state": "sound", "rows": report.rows}
        lines = [f"nothing to recover: journal chain verified: {report.rows} rows"]
        return _answer(facts, lines, as_json)
    backlog = store.journal.backlog()
    first_bad = report.first_bad_seq
    kept_to = backlog.last_seq if first_bad is None else min(first_bad - 1, backlog.last_seq)
    kept_to = max(kept_to, backlog.anchor_seq)
    kept_hash = store.journal.hash_at(kept_to)
    local = list(store.journal.readable_rows(kept_to, backlog.last_seq))

    def planned(fetched: list[dict[str, Any]]) -> RecoveryPlan:
        return plan_recovery(
            anchor_seq=backlog.anchor_seq,
            kept_to=kept_to,
            kept_hash=kept_hash,
            last_seq=backlog.last_seq,
            fetched=fetched,
            local=local,
        )

    plan = planned([])
    if plan.lost:  # the platform is asked only for what the store cannot give
        plan = planned(fetch(kept_to, backlog.last_seq))
    where = "" if first_bad is None else f" at seq {first_bad}"
    planned_facts = _plan_facts(plan, backlog.anchor_seq, backlog.last_seq)
    facts = {
        "state": "damaged",
        "first_bad_seq": first_bad,
        "problem": report.problem,
        **planned_facts,
        "rebuilt": False,
    }
    lines = [
        f"journal damaged{where}: {report.problem}",
        f"plan: {plan.summary}",
        *_plan_lines(planned_facts),
    ]
    if plan.refused is not None:
        lines.append("sscard: the platform's rows do not continue the chain: nothing rebuilt")
        return _answer(facts, lines, as_json, EXIT_FAILURE)
    if not apply:
        lines.append("run again with --yes to write a new store file (the damaged one is kept)")
        return _answer(facts, lines, as_json)
    done = rebuild_store(store, plan, terminal_id=terminal_id, journal_key=journal_key)
    facts.update(_rebuild_facts(done))
    lines.extend(_rebuild_lines(done))
    return _answer(facts, lines, as_json)


def _plan_facts(plan: RecoveryPlan, anchor_seq: int, last_seq: int) -> dict[str, Any]:
    kept = (*range(anchor_seq + 1, plan.kept_to + 1), *plan.salvaged)
    fetched = tuple(row.seq for row in plan.fetched)
    return {
        "kept": plan.kept,
        "kept_seqs": seq_ranges(kept) if kept else None,
        "refetched": len(plan.fetched),
        "refetched_seqs": seq_ranges(fetched) if fetched else None,
        "lost": len(plan.lost),
        "lost_seqs": seq_ranges(plan.lost) if plan.lost else None,
        "gap_seq": last_seq + 1 if plan.lost else None,
        "refused": plan.refused,
    }


def _plan_lines(facts: dict[str, Any]) -> list[str]:
    lines = [
        f"kept: seq {facts['kept_seqs'] or '-'}",
        f"re-fetched: seq {facts['refetched_seqs'] or '-'}",
    ]
    if facts["lost"]:
        lines.append(
            f"lost: seq {facts['lost_seqs']} (declared by a gap row at seq {facts['gap_seq']})"
        )
    return lines


def _rebuild_facts(done: RebuildReport) -> dict[str, Any]:
    return {
        "rebuilt": True,
        "path": str(done.path),
        "damaged_file": str(done.damaged),
        "rows": done.rows,
        "unreadable": list(done.unreadable),
        "resynced": list(done.resynced),
    }


def _rebuild_lines(done: RebuildReport) -> list[str]:
    lines = [f"rebuilt: {done.path} ({done.rows} journal rows); the damaged file is kept as "
             f"{done.damaged}"]  # fmt: skip
    if done.unreadable:
        lines.append(
            f"not readable, left empty: {', '.join(done.unreadable)}"
            + (
                f" (the next sync provisions {', '.join(done.resynced)} again)"
                if done.resynced
                else ""
            )
        )
    return lines


def _answer(facts: dict[str, Any], lines: list[str], as_json: bool, status: int = 0) -> Answer:
    if as_json:
        return Answer((json.dumps(facts, ensure_ascii=False, sort_keys=True),), (), status)
    if status:  # the reason goes to stderr, as every sscard failure's
        return Answer(tuple(lines[:-1]), (lines[-1],), status)
    return Answer(tuple(lines), (), status)
