"""The degraded policy for a stale or missing list, and the alarms that go with it
(docs/policy.md §3).

A terminal keeps deciding when its deny list, catalogue or trust list has aged: refusing lawful
use is an offence (guangdong-draft.txt §25(三), jiangxi-2022.txt §19(四)) and a bus has no
staff window. Each scenario profile says, per list, what to do (``[degraded]``: ``accept`` and
flag the decision, ask the platform ``online`` and fall back, or ``refuse``); the staleness is
the operator's alarm — one log line per change of state (:class:`ListWatch`), the ages for
metrics (:func:`list_status`), the status commands — and a terminal that was never provisioned
says so loudly when it starts (:func:`startup_warnings`).

Journal flags: ``stale_list:<list>`` when a decision was taken without a current list,
``online:<list>`` when the platform answered for it during the tap.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

from ecard import QrReason, QrRefused, TrustList, parse_trust_list
from offline_store import ListName, ListState, Store, list_ages
from terminal.profiles import Profile

if TYPE_CHECKING:  # the decision path loads no sync code: the link is a Protocol
    from sync.status import CardStatus

__all__ = [
    "ACCEPT",
    "CARD_LISTS",
    "ONLINE",
    "REFUSE",
    "ListStatus",
    "ListWatch",
    "PlatformLink",
    "list_status",
    "online_flag",
    "stale_flag",
    "startup_warnings",
    "status_lines",
    "trust_list_for_codes",
]

log = logging.getLogger(__name__)

ACCEPT, ONLINE, REFUSE = "accept", "online", "refuse"
SECONDS_PER_HOUR = 3600
#: the end of validity of an expired trust list accepted under the ``accept`` policy
OPEN_END = dt.datetime(9999, 12, 31, tzinfo=dt.UTC)
#: the lists a card decision uses (the trust list serves e-card codes only)
CARD_LISTS = (ListName.DENY_LIST, ListName.CATALOGUE)
HOW_TO_PROVISION = {
    ListName.DENY_LIST: "`sscard deny import FILE --public-key PEM`",
    ListName.CATALOGUE: "`sscard catalogue load FILE`",
    ListName.TRUST_LIST: "`sscard qr trust-import FILE`",
}
SPOKEN = {
    ListName.DENY_LIST: "no deny list",
    ListName.CATALOGUE: "no catalogue",
    ListName.TRUST_LIST: "no trust list",
}


def stale_flag(name: ListName) -> str:
    """The journal flag of a decision taken without a current list.

    :param name: the list
    :raises: nothing
    """
    return f"stale_list:{name}"


def online_flag(name: ListName) -> str:
    """The journal flag of a decision the platform answered for during the tap.

    :param name: the list
    :raises: nothing
    """
    return f"online:{name}"


class PlatformLink(Protocol):
    """The platform, asked while a holder waits (``sync.online.OnlineLists``). Every method
    returns within the profile's timeout and never raises."""

    def card_status(self, card_hash: str) -> CardStatus | None:
        """One card's deny-list entry, ``None`` when the platform did not answer."""

    def refresh_catalogue(self) -> bool:
        """Fetch and load the terminal's catalogue; whether it worked."""

    def refresh_trust_list(self) -> bool:
        """Fetch, verify and keep the trust list; whether a list is held afterwards."""


@dataclass(frozen=True, slots=True)
class ListStatus:
    """One list as a scenario sees it: what a status line or a metric shows.

    :param name: the list
    :param state: fresh, stale or missing for this scenario
    :param age_s: seconds since it was last known current, ``None`` when missing
    :param limit_s: how old the scenario lets it be (the trust list: its own validity, ``None``)
    :param policy: the profile's degraded policy for it (``online`` with its fallback:
        ``online, else accept``)
    """

    name: ListName
    state: ListState
    age_s: float | None
    limit_s: float | None
    policy: str

    @property
    def degraded(self) -> bool:
        """The list is stale or missing: decisions follow the degraded policy."""
        return self.state is not ListState.FRESH


def _policy_text(profile: Profile, name: ListName) -> str:
    policy = profile.degraded.for_list(str(name))
    if policy == ONLINE:
        return f"online, else {profile.degraded.online_fallback}"
    return policy


def list_status(
    store: Store, profile: Profile, now: dt.datetime, names: Iterable[ListName] = tuple(ListName)
) -> tuple[ListStatus, ...]:
    """The state of each list for a scenario (for ``sscard deny status``, ``sscard catalogue
    list``, metrics: ``sscard_list_age_seconds{list}``, ``sscard_list_degraded{list,scenario}``).

    :param store: the open store
    :param profile: the scenario profile (its age limit and policy)
    :param now: the terminal's clock (aware)
    :param names: the lists wanted
    :raises StoreError: the database failed
    """
    ages = list_ages(store)
    limit = profile.max_list_age_hours * SECONDS_PER_HOUR
    out = []
    for name in names:
        age = ages[name]
        own_limit = None if name is ListName.TRUST_LIST else limit
        out.append(
            ListStatus(
                name,
                age.state(now, limit),
                age.age_s(now),
                own_limit,
                _policy_text(profile, name),
            )
        )
    return tuple(out)


class ListWatch:
    """Remembers each list's last state and logs one line when it changes — a warning when a
    list goes stale or missing, an info line when it is current again — never one per tap.

    :param scenario: the profile's name, in the log lines
    """

    def __init__(self, scenario: str) -> None:
        self.scenario = scenario
        self._last: dict[ListName, ListState] = {}

    def observe(self, status: ListStatus) -> None:
        """Note a list's state; log when it changed (a list first seen degraded counts).

        :param status: the list's state now
        :raises: nothing
        """
        before = self._last.get(status.name, ListState.FRESH)
        self._last[status.name] = status.state
        if status.state is before:
            return
        age_h = "-" if status.age_s is None else f"{status.age_s / SECONDS_PER_HOUR:.1f}"
        if status.degraded:
            log.warning(
                "event=list_degraded list=%s state=%s age_h=%s scenario=%s policy=%s",
                status.name,
                status.state,
                age_h,
                self.scenario,
                status.policy.replace(", else ", "/"),
            )
        else:
            log.info(
                "event=list_current list=%s age_h=%s scenario=%s", status.name, age_h, self.scenario
            )

    def states(self, store: Store, profile: Profile, now: dt.datetime) -> dict[ListName, ListState]:
        """The card lists' states now, each observed.

        :param store: the open store
        :param profile: the scenario profile
        :param now: the terminal's clock (aware)
        :raises StoreError: the database failed
        """
        found = list_status(store, profile, now, CARD_LISTS)
        for status in found:
            self.observe(status)
        return {status.name: status.state for status in found}


def startup_warnings(
    store: Store,
    profile: Profile,
    now: dt.datetime,
    *,
    region: str | None,
    online: bool,
) -> list[str]:
    """What an operator must hear when a terminal starts: lists never provisioned (and how to
    provision them), an ``online`` policy with no platform to ask, a catalogue that does not
    offer the scenario here.

    :param store: the open store
    :param profile: the scenario profile
    :param now: the terminal's clock (aware)
    :param region: the terminal's region (``[sync] region``), or ``None``
    :param online: whether a platform link is configured
    :raises StoreError: the database failed
    """
    lines: list[str] = []
    statuses = list_status(store, profile, now)
    missing = [s.name for s in statuses if s.state is ListState.MISSING]
    if missing:
        never = len(missing) == len(statuses)
        lines.append(
            ("this terminal was never provisioned: " if never else "this terminal lacks lists: ")
            + ", ".join(SPOKEN[n] for n in missing)
        )
        card_policies = ", ".join(
            f"{name.replace('_', ' ')}: {_policy_text(profile, name)}"
            for name in CARD_LISTS
            if name in missing
        )
        if card_policies:
            lines.append(
                f"until it is, {profile.name} decides cards under its degraded policy "
                f"({card_policies}) and flags every decision stale_list"
            )
        if ListName.TRUST_LIST in missing:
            lines.append("e-card codes of the open format cannot be verified offline without it")
        lines.append(
            "provision it: `sscard sync --once` (with [sync] in the settings), or by hand: "
            + ", ".join(HOW_TO_PROVISION[n] for n in missing)
        )
    asks = [n for n in CARD_LISTS if profile.degraded.for_list(str(n)) == ONLINE]
    if asks and not online:
        lines.append(
            f"{profile.name} asks the platform when {' or '.join(str(n) for n in asks)} is "
            "stale, but no [sync] url/key is configured: it will "
            f"{profile.degraded.online_fallback} without asking"
        )
    if ListName.CATALOGUE not in missing:
        today = now.date()
        item = store.catalogue.offered(profile.catalogue_item, str(profile.scenario), region, today)
        if item is None:
            where = f"in region {region}" if region else "in the loaded catalogue"
            lines.append(
                f"the catalogue offers no item {profile.catalogue_item} for {profile.scenario} "
                f"{where} today: every tap will be refused not_in_catalogue"
            )
    if missing:
        log.warning(
            "event=terminal_unprovisioned missing=%s scenario=%s",
            ",".join(str(n) for n in missing),
            profile.name,
        )
    return lines


def trust_list_for_codes(
    store: Store,
    profile: Profile,
    root_key_pem: bytes,
    now: float,
    *,
    online: PlatformLink | None = None,
    watch: ListWatch | None = None,
    production: bool = False,
) -> tuple[TrustList, tuple[str, ...]]:
    """The trust list to verify an open-format code with, under the profile's degraded policy
    for the trust list, and the journal flags that go with it.

    Fresh: the verified list, no flag. Expired: ``accept`` verifies with it all the same
    (``stale_list:trust_list``; the list returned has its end of validity set aside, its keys
    and signature checked as ever); ``online`` fetches a new one first (``online:trust_list``) and
    falls back; ``refuse`` refuses. A missing list can only be fetched: without one, nothing
    can be verified offline.

    :param store: the open store
    :param profile: the scenario profile
    :param root_key_pem: the pinned trust root
    :param now: the wall clock, seconds since 1970
    :param online: the platform link, or ``None``
    :param watch: the pipeline's list watch (the trust list's state changes are logged there)
    :param production: a production terminal: a TEST KEY as the root or on the list is refused
        whatever the policy (an expired list's keys are checked as a fresh one's)
    :raises QrRefused: ``stale_trust_list`` when no usable list is held
    :raises TrustListError: the stored list does not verify (tampered), or holds a TEST KEY in
        production
    """
    when = dt.datetime.fromtimestamp(now, dt.UTC)
    (status,) = list_status(store, profile, when, (ListName.TRUST_LIST,))
    if watch is not None:
        watch.observe(status)
    raw = store.trust.load()
    if raw is not None and status.state is ListState.FRESH:
        return parse_trust_list(raw, root_key_pem, now, production=production), ()
    policy = profile.degraded.trust_list
    if policy == ONLINE:
        if online is not None and online.refresh_trust_list():
            raw = store.trust.load()
            try:
                if raw is not None:
                    flags = (online_flag(ListName.TRUST_LIST),)
                    return parse_trust_list(raw, root_key_pem, now, production=production), flags
            except QrRefused:
                pass  # the platform had nothing newer: still not current, fall back
        policy = profile.degraded.online_fallback
    if raw is None:
        raise QrRefused(QrReason.STALE_TRUST_LIST, "no trust list imported")
    if policy == REFUSE:
        # raises: the list is not current
        return parse_trust_list(raw, root_key_pem, now, production=production), ()
    # verified against the pinned root all the same; only its end of validity is set aside, so
    # that the codes its keys signed verify (verify_code checks the list's dates again)
    trust = parse_trust_list(raw, root_key_pem, now, skew_s=math.inf, production=production)
    return replace(trust, not_after=OPEN_END), (stale_flag(ListName.TRUST_LIST),)


def status_lines(
    store: Store, name: ListName, profiles: Iterable[Profile], now: dt.datetime
) -> list[str]:
    """How old a list is and, per scenario, whether decisions are degraded (for ``sscard deny
    status`` and ``sscard catalogue list``).

    :param store: the open store
    :param name: the list
    :param profiles: the scenarios to report on
    :param now: the terminal's clock (aware)
    :raises StoreError: the database failed
    """
    age = list_ages(store)[name]
    if age.as_of is None:
        lines = ["age:         - (never provisioned)"]
    else:
        hours = (now - age.as_of).total_seconds() / SECONDS_PER_HOUR
        as_of = age.as_of.astimezone().isoformat(timespec="seconds")
        lines = [f"age:         {hours:.1f} h (current as of {as_of})"]
    for profile in profiles:
        (status,) = list_status(store, profile, now, (name,))
        limit = (
            f"limit {status.limit_s / SECONDS_PER_HOUR:g} h"
            if status.limit_s is not None
            else "its validity"
        )
        if status.degraded:
            shown = f"DEGRADED ({status.state}, {limit}): {status.policy}"
        else:
            shown = f"fresh ({limit})"
        label = f"{profile.name}:"
        lines.append(f"  {label:<12}{' ' if len(label) >= 12 else ''}{shown}")
    return lines
