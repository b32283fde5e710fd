"""The follow-up rows of deferred national e-card codes, once the platform judged them
(docs/qr-format.md §14.4, docs/sync.md §12).

A bus or a gate let a holder through on a national code the platform could not decode at the
time (:func:`terminal.ecard_flow.defer_or_refuse`). At the next sync the platform judges the
code as of the scan (:meth:`sync.client.SyncClient.confirm_deferred`); this module turns its
verdict into the row that completes the deferred decision, as the terminal would have decided
with the card in hand:

* invalid on the platform's word (a code it never issued or that had expired, a card expired
  or on the deny list that day): ``ecard_invalid`` with ``invalid:<reason>``;
* valid, but a card this service does not serve (the profile's categories, a region
  restriction): ``ecard_invalid`` too — ``invalid:category_not_allowed`` …;
* valid: ``ecard_confirmed``, with the fare of a bus ride computed from the card's data
  (concessions included: an elderly holder's deferred ride is free as the physical card's is).

The profile is the one the deferred row names (its ``scenario``), loaded by name; one that
cannot be found (a profile file outside the built-in folder) gives the platform's verdict
alone, flagged ``unchecked:profile``.
"""

from __future__ import annotations

import logging

from offline_store import JournalEntry, JournalRow, Store, canonical_ecard_id
from sync.deferred import Confirmation, Invalidity, follow_up_entry
from terminal.card_read import CodeRead
from terminal.pipeline import Pipeline
from terminal.profiles import ProfileError, load_profile
from terminal.reasons import Reason

__all__ = ["UNCHECKED_PROFILE", "FollowUps"]

log = logging.getLogger(__name__)

#: the flag of a confirmation whose profile could not be found: the platform's verdict alone
UNCHECKED_PROFILE = "unchecked:profile"
#: the terminal's own refusals of a card the platform confirmed
REFUSALS = {
    Reason.CATEGORY_NOT_ALLOWED: Invalidity.CATEGORY_NOT_ALLOWED,
    Reason.REGION_NOT_ACCEPTED: Invalidity.REGION_NOT_ACCEPTED,
}


class FollowUps:
    """Makes the follow-up row of each deferred code a sync had judged
    (``SyncClient(…, follow_up=FollowUps())``); one per sync, it keeps the profiles it loaded.
    """

    def __init__(self) -> None:
        self._pipelines: dict[tuple[str, str], Pipeline | None] = {}

    def __call__(self, store: Store, row: JournalRow, confirmation: Confirmation) -> JournalEntry:
        """The follow-up row of one deferred row.

        :param store: the open store (the pepper, the lists a pipeline reads at start)
        :param row: the deferred row
        :param confirmation: the platform's verdict
        :raises StoreError: the store failed, or holds no pepper
        """
        if not confirmation.valid:
            return follow_up_entry(row, reason=confirmation.reason)
        assert confirmation.token and confirmation.region  # Confirmation.parse guarantees them
        card_hash = store.card_hash(canonical_ecard_id(confirmation.token))
        pipeline = self._pipeline(store, row)
        if pipeline is None:
            return follow_up_entry(
                row, reason=None, card_hash=card_hash, flags=(UNCHECKED_PROFILE,)
            )
        confirmed = CodeRead(
            pipeline.profile,
            confirmation.token,
            confirmation.region,
            confirmation.category,
            confirmation.not_after,
            identity={},
            module="platform",
        )
        facts = confirmed.base()
        decision = pipeline.complete_deferred(facts, card_hash, row.wall_time)
        if not decision.accepted:
            # complete_deferred refuses for these reasons only
            return follow_up_entry(row, reason=REFUSALS[decision.reason], card_hash=card_hash)
        fare = decision.detail.get("fare_fen")
        return follow_up_entry(
            row, reason=None, card_hash=card_hash, amount=fare if isinstance(fare, int) else None
        )

    def _pipeline(self, store: Store, row: JournalRow) -> Pipeline | None:
        key = (row.scenario, row.terminal_id)
        if key not in self._pipelines:
            try:
                profile = load_profile(row.scenario)
            except ProfileError as exc:
                log.warning(
                    "event=ecard_confirm_no_profile scenario=%s error=%s", row.scenario, exc
                )
                self._pipelines[key] = None
            else:
                self._pipelines[key] = Pipeline(profile, store, terminal_id=row.terminal_id)
        return self._pipelines[key]
