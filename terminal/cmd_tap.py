"""``sscard tap --scenario NAME``: wait for one card, run the whole pipeline, print the decision.

``NAME`` is a built-in profile (``transit``, ``coach``, ``ferry``, ``gate``, ``hotel``,
``hospital``, ``service-hall``, ``meal-point``) or a profile file. A hotel needs ``--room``; a
service hall serves the holder for ``--service CODE`` (its first service by default) and asks
the PIN where that service needs it.

The decision is journaled in the offline store (``[store]`` in the settings) before it is
printed or signalled. Exit status: 0 accepted, 1 refused or "try again", 2 no decision could be
made (settings, profile, store, reader).

The terminal's region is ``[sync] region``; with ``[sync]`` configured, the platform is asked
during the tap where the profile's degraded policy says ``online``. What an operator must hear
— lists never provisioned, an ``online`` policy with no platform — is printed on stderr before
the card is awaited (docs/policy.md).
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from apdu.atr import Atr
from apdu.errors import SscardError
from apdu.transport import t0_chain
from config.settings import Settings, load_settings
from drivers.indicators import (
    ConsoleIndicator,
    Indicator,
    IndicatorError,
    IndicatorSet,
    SerialIndicator,
    VoiceIndicator,
)
from drivers.indicators.voice import SND_DIR, audio_output_present
from drivers.pcsc import PcscReader
from ecard import save_trust_list
from offline_store import Store, load_key_file, load_pepper_file
from sync.config import SyncConfig
from sync.online import OnlineLists
from terminal.card_read import ScenarioRead
from terminal.list_policy import ONLINE
from terminal.modules import open_module
from terminal.pipeline import Decision, Pipeline
from terminal.profiles import PROFILE_DIR, Profile, Scenario, load_profile
from terminal.reasons import hotlines_from

log = logging.getLogger(__name__)

EXIT_ACCEPTED = 0
EXIT_REFUSED = 1
EXIT_NO_DECISION = 2


def open_store(settings: Settings) -> Store:
    """Open the offline store the settings name, with its pepper and journal key.

    :param settings: the terminal settings
    :raises SscardError: no pepper configured, unreadable key files, a locked or newer store
    """
    if settings.pepper_file is None:
        raise SscardError(f"{settings.source}: [store] pepper_file is not set")
    pepper = load_pepper_file(settings.pepper_file)
    key = load_key_file(settings.journal_key_file) if settings.journal_key_file else None
    return Store.open(
        settings.database,
        journal_key=key,
        pepper=pepper,
        journal_cap_rows=settings.journal_cap_rows,
    )


def open_online(settings: Settings, store: Store, profile: Profile) -> OnlineLists | None:
    """The platform link for the ``online`` degraded policy (``sync.online.OnlineLists``), or
    ``None`` when the profile never asks or no platform is configured.

    A link that cannot be built (an unreadable key file) is a warning, not a failure: the
    terminal still decides, under the profile's fallback.

    :param settings: the terminal settings (``[sync]``)
    :param store: the open store
    :param profile: the scenario profile (its policy and timeout)
    :raises: nothing
    """
    policy = profile.degraded
    if ONLINE not in (policy.deny_list, policy.catalogue, policy.trust_list):
        return None
    if not (settings.sync_url and settings.sync_key_file and settings.sync_key_id):
        return None  # startup_warnings says what the profile does instead
    try:
        config = SyncConfig.from_settings(settings)
    except SscardError as exc:
        print(f"sscard: warning: no platform link ({exc}); deciding without it", file=sys.stderr)
        return None
    return OnlineLists(
        config, store, timeout_s=policy.online_timeout_s, trust_saver=save_trust_list
    )


def warn_operator(pipeline: Pipeline) -> None:
    """Print the pipeline's start-up warnings on stderr, loudly.

    :param pipeline: the pipeline
    :raises: nothing
    """
    for line in pipeline.warnings:
        print(f"sscard: WARNING: {line}", file=sys.stderr)


def voice_enabled(
    setting: bool | None, *, snd_dir: Path = SND_DIR, aplay: str | None = "aplay"
) -> bool:
    """Whether prompts are spoken: as the settings say, and where they say nothing, wherever
    the machine has a sound output (Guangdong draft §15, 2026 draft §6, Jiangxi §10).

    :param setting: ``[indicators] voice``: ``True``, ``False``, or ``None`` when not set
    :param snd_dir: where ALSA's device nodes are
    :param aplay: the ``aplay`` program asked for sound cards, ``None`` not to ask
    """
    if setting is not None:
        return setting
    present = audio_output_present(snd_dir, aplay)
    log.info(
        "event=voice_default enabled=%s why=%s",
        str(present).lower(),
        "audio_output_found" if present else "no_audio_output",
    )
    return present


def build_indicators(
    settings: Settings,
    profile: Profile,
    profile_dir: Path = PROFILE_DIR,
    *,
    snd_dir: Path = SND_DIR,
) -> Indicator | None:
    """The indicators the settings ask for: console (stderr), serial board, voice.

    Voice prompts follow :func:`voice_enabled`. When they are on only because a sound output
    exists and they cannot start (espeak-ng missing), the terminal goes on without them and
    says so: refusing every holder for want of a voice would be worse.

    :param settings: the terminal settings
    :param profile: the scenario profile (its voice prompts)
    :param profile_dir: the folder relative audio files of the profile are taken from
    :param snd_dir: where ALSA's device nodes are
    :raises SscardError: an indicator that cannot start (voice: only when the settings ask
        for it)
    """
    chosen: list[Indicator] = []
    if settings.console:
        chosen.append(ConsoleIndicator(sys.stderr))
    if settings.serial_port:
        chosen.append(SerialIndicator(settings.serial_port, baudrate=settings.serial_baud))
    setting = settings.voice
    if voice_enabled(setting, snd_dir=snd_dir):
        try:
            chosen.append(VoiceIndicator.from_config(profile.voice, base_dir=profile_dir))
        except IndicatorError as exc:
            if setting is not None:
                raise
            log.warning("event=voice_unavailable error=%s", exc)
    return IndicatorSet(chosen) if chosen else None


@contextmanager
def closing_indicator(indicator: Indicator | None) -> Iterator[Indicator | None]:
    """Close the indicators when the command ends.

    :param indicator: the indicators, or ``None``
    """
    try:
        yield indicator
    finally:
        if indicator is not None:
            indicator.close()


def print_decision(decision: Decision, fmt: str) -> None:
    """Print a decision as JSON or as a short table (the record in full: it is the output
    the scenario exists to produce).

    :param decision: the decision
    :param fmt: ``json`` or ``table``
    """
    out = decision.to_json()
    if fmt == "json":
        print(json.dumps(out, ensure_ascii=False))
        return
    lines = [
        f"{'结果 outcome':<18} {out['outcome']} ({out['reason']})",
        f"{'提示 prompt':<18} {out['prompt_zh']} / {out['prompt_en']}",
    ]
    if out["advice_zh"]:
        lines.append(f"{'建议 advice':<18} {out['advice_zh']} / {out['advice_en']}")
    lines += [f"{k:<18} {v}" for k, v in out["detail"].items()]
    lines += [f"{k:<18} {v}" for k, v in (decision.record or {}).items()]
    if out["hotline"]:
        lines.append(out["hotline"])
    lines.append(f"{'流水号 journal seq':<18} {out['seq']}")
    print("\n".join(lines))


def cmd_tap(args: argparse.Namespace) -> int:
    """Handle ``sscard tap``; a failure before the decision is answered by ``sscard``'s
    ``main`` (exit status 2, :data:`EXIT_NO_DECISION`)."""
    settings = load_settings(args.config)
    profile = load_profile(args.scenario)
    if profile.scenario == Scenario.HOTEL and not args.room:
        print("sscard: a hotel registration needs --room", file=sys.stderr)
        return EXIT_NO_DECISION
    problem = service_problem(profile, args.service)
    if problem:
        print(f"sscard: {problem}", file=sys.stderr)
        return EXIT_NO_DECISION
    with ExitStack() as stack:
        store = stack.enter_context(open_store(settings))
        profile_dir = profile_dir_of(args.scenario)
        indicators = build_indicators(settings, profile, profile_dir)
        indicator = stack.enter_context(closing_indicator(indicators))
        readers = stack.enter_context(PcscReader())
        _, module = open_module(args, readers, settings)
        if module is not None:
            stack.enter_context(module)
        online = open_online(settings, store, profile)
        if online is not None:
            stack.enter_context(online)
        pipeline = Pipeline(
            profile,
            store,
            terminal_id=settings.terminal_id,
            indicator=indicator,
            profile_dir=profile_dir,
            region=settings.sync_region,
            online=online,
            hotlines=hotlines_from(settings.hotlines),
        )
        warn_operator(pipeline)
        sam = args.sam_reader
        exclude = [r for r in readers.list_readers() if sam and sam in r]
        connection = stack.enter_context(
            readers.wait_for_card(args.timeout, reader=args.reader, exclude=exclude)
        )
        pin = _pin(args) if pipeline.rules.needs_pin(args.service) else None
        read = ScenarioRead(
            t0_chain(connection), Atr.parse(connection.atr).historical, profile, module
        )
        decision = pipeline.process(read, pin=pin, room=args.room, service=args.service)
        alarm = store.journal.alarm()
    if alarm:
        print(f"sscard: warning: {alarm}", file=sys.stderr)
    print_decision(decision, args.format)
    return EXIT_ACCEPTED if decision.accepted else EXIT_REFUSED


def service_problem(profile: Profile, service: str | None) -> str | None:
    """What is wrong with ``--service`` for a profile, said before any card is read.

    :param profile: the scenario profile
    :param service: the ``--service`` value, or ``None``
    :raises: nothing
    """
    hall = profile.service_hall
    if hall is None:
        if service is None:
            return None
        return f"--service is for a service hall, not a {profile.scenario} profile"
    if hall.service(service) is None:
        offered = ", ".join(item.code for item in hall.services)
        return f"this service hall offers no service {service!r}; it offers: {offered}"
    return None


def profile_dir_of(scenario: str) -> Path:
    """The folder of a profile given by path, else the built-in profile folder."""
    path = Path(scenario)
    return path.resolve().parent if path.suffix == ".toml" else PROFILE_DIR


def _pin(args: argparse.Namespace) -> str | None:
    if args.pin_stdin:
        line = sys.stdin.readline().rstrip("\n")
        return line or None
    try:
        return getpass.getpass("PIN: ") or None
    except (EOFError, OSError):
        return None


def add_parser(sub: Any) -> None:
    """Register ``sscard tap``.

    :param sub: the CLI's subparsers
    """
    tap = sub.add_parser(
        "tap", help="wait for one card, decide for a scenario, journal and print the decision"
    )
    built_in = ", ".join(sorted(p.stem for p in PROFILE_DIR.glob("*.toml")))
    tap.add_argument(
        "--scenario", required=True, metavar="NAME", help=f"profile name ({built_in}) or file"
    )
    tap.add_argument("--reader", help="reader name or a unique part of it (default: any)")
    tap.add_argument("--timeout", type=float, default=20.0, help="seconds to wait for a card")
    tap.add_argument("--config", help="terminal settings file (default: $SSCARD_CONFIG)")
    tap.add_argument("--room", help="room number (hotel registration)")
    tap.add_argument(
        "--service",
        metavar="CODE",
        help="the service a service-hall window serves the holder for (default: its first)",
    )
    tap.add_argument("--pin-stdin", action="store_true", help="read the PIN from standard input")
    tap.add_argument("--format", choices=("json", "table"), default="table", help="output format")
    module = tap.add_mutually_exclusive_group()
    module.add_argument("--sam-reader", metavar="NAME", help="reader holding the PSAM")
    module.add_argument("--hsm", metavar="URL", help="HSM service for the two-step mode")
    module.add_argument(
        "--soft-sam", metavar="KEYFILE", help="software SAM root keys (development only)"
    )
    tap.set_defaults(handler=cmd_tap)
