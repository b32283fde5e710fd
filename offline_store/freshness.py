"""How old the terminal's lists are: the deny list, the application catalogue and the e-card
trust list, each as of the last moment the terminal knew it to be current.

A list is *missing* when it was never provisioned, *stale* when it is older than a scenario
allows (the deny list and the catalogue: ``max_list_age_hours`` of the profile; the trust list:
past its own end of validity), else *fresh*. What a terminal does with a stale or missing list
is the scenario profile's degraded policy (``terminal/list_policy.py``, docs/policy.md); this
module only measures. :func:`list_ages` is what an operator's status line or a metrics
exporter reads (ages in seconds, ``None`` for a list never provisioned).

A deny list is current as of the later of its header's ``created`` time and the last time the
platform confirmed it is still the newest one (``GET /v1/deny`` answered 204: the sync client
records that moment under :data:`META_DENY_CURRENT_AT`). A catalogue is current as of its
load time (the sync client fetches it whole at every sync), a trust list as of its save time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from offline_store.store import Store

__all__ = [
    "META_DENY_CURRENT_AT",
    "ListAge",
    "ListName",
    "ListState",
    "list_ages",
]

#: when the platform last confirmed the active deny list is its current one (seconds since 1970)
META_DENY_CURRENT_AT = "sync.deny_current_at"


class ListName(StrEnum):
    """The lists a terminal decides from."""

    DENY_LIST = "deny_list"
    CATALOGUE = "catalogue"
    TRUST_LIST = "trust_list"


class ListState(StrEnum):
    """How usable a list is for a scenario."""

    FRESH = "fresh"  # known current within the age the scenario allows
    STALE = "stale"  # older than the scenario allows, or past its own end of validity
    MISSING = "missing"  # never provisioned on this terminal


@dataclass(frozen=True, slots=True)
class ListAge:
    """When a list was last known current.

    :param name: the list
    :param as_of: the last moment it was known current (aware), ``None`` when never provisioned
    :param version: its version where it has one (deny list, trust list), else ``None``
    :param expires: the end of its own validity (the trust list), else ``None``
    """

    name: ListName
    as_of: dt.datetime | None
    version: int | None = None
    expires: dt.datetime | None = None

    def age_s(self, now: dt.datetime) -> float | None:
        """Seconds since the list was last known current, ``None`` when missing.

        :param now: the terminal's clock (aware)
        :raises: nothing
        """
        return None if self.as_of is None else (now - self.as_of).total_seconds()

    def state(self, now: dt.datetime, max_age_s: float) -> ListState:
        """Fresh, stale or missing, for a scenario that trusts a list ``max_age_s`` seconds.

        A list with an end of validity (the trust list) is stale past it, whatever its age.

        :param now: the terminal's clock (aware)
        :param max_age_s: the scenario's limit
        :raises: nothing
        """
        if self.as_of is None:
            return ListState.MISSING
        if self.expires is not None:
            return ListState.STALE if now >= self.expires else ListState.FRESH
        age = self.age_s(now)
        return ListState.STALE if age is not None and age > max_age_s else ListState.FRESH


def list_ages(store: Store) -> dict[ListName, ListAge]:
    """The age of each list in a store.

    :param store: the open offline store
    :raises StoreError: the database failed
    """
    deny = store.deny.status()
    as_of = deny.created
    confirmed = store.meta.get(META_DENY_CURRENT_AT)
    if deny.version is not None and confirmed is not None:
        # an unchanged list is current as of the platform's last "nothing newer" answer
        checked = dt.datetime.fromtimestamp(float(confirmed), dt.UTC)
        as_of = checked if as_of is None or checked > as_of else as_of
    trust = store.trust.info()
    return {
        ListName.DENY_LIST: ListAge(ListName.DENY_LIST, as_of, deny.version),
        ListName.CATALOGUE: ListAge(ListName.CATALOGUE, store.catalogue.loaded_at()),
        ListName.TRUST_LIST: (
            ListAge(ListName.TRUST_LIST, None)
            if trust is None
            else ListAge(
                ListName.TRUST_LIST,
                dt.datetime.fromisoformat(trust.saved_at),
                trust.version,
                dt.datetime.fromtimestamp(trust.not_after, dt.UTC),
            )
        ),
    }
