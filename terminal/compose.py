"""The composition root: what builds a terminal's parts from its settings.

:func:`open_terminal` builds a whole :class:`Terminal` (store, pipeline, security module,
indicators, the readers and scanners to watch) for ``sscard tap`` and for the daemon
(``sscard run``). The command handlers of ``sscard qr verify`` and ``sscard scan`` build the
same parts (the offline store, the platform link, the indicators) with the pieces below, and
``sscard deny status`` and ``sscard catalogue list`` the same profiles; they take them from
here, so no command module imports another. The card reader comes from
:func:`open_reader` (a back-end of :mod:`drivers.readers`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from apdu.errors import SscardError
from apdu.resources import Closing
from apdu.sam import SecurityModule
from config.settings import Settings
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
from drivers.readers import BACKENDS as READERS
from drivers.readers import Reader
from ecard import save_trust_list
from offline_store import Store, load_key_file, load_pepper_file
from sync.config import SyncConfig
from sync.online import OnlineLists
from terminal.list_policy import ONLINE
from terminal.modules import ModuleChoice, open_chosen
from terminal.payments import TransitPayments, open_fare_module, transit_payments
from terminal.pipeline import Pipeline
from terminal.profiles import PROFILE_DIR, Profile, load_profile
from terminal.reasons import hotlines_from

log = logging.getLogger(__name__)


def open_reader(
    settings: Settings, *, name: str | None = None, exclude: Iterable[str] = ()
) -> Reader:
    """The card reader the settings name: ``[terminal] reader_backend`` (``pcsc``, or
    ``virtual`` for an emulated card in-process) and ``[terminal] reader`` (a reader's name or
    a unique part of it; left out, any reader that gets a card).

    The reader is a :class:`drivers.readers.Reader` and a context manager; the caller owns it::

        with open_reader(settings) as reader:
            with reader.wait_for_card(timeout=1.0) as card:   # ReaderTimeout: no card yet
                ...                                           # card.transmit(apdu) -> (data, sw)
            reader.wait_for_removal(timeout=3.0)

    :param settings: the terminal settings
    :param name: a reader's name or part of one instead of ``[terminal] reader`` (``--reader``)
    :param exclude: names, or parts of names, of readers never to take (the PSAM's slot)
    :raises ReaderUnavailable: an unknown back-end, one that cannot be loaded, or a virtual
        reader whose card cannot be read
    :raises SscardError: the virtual reader on a production terminal (its cards hold TEST KEYS)
    """
    backend = settings.reader_backend
    wanted = name if name is not None else settings.reader
    if backend == "virtual":
        if settings.production:
            raise SscardError(
                f"{settings.source}: a production terminal has no virtual reader"
                " ([terminal] reader_backend)"
            )
        return READERS.create(
            {"backend": backend, "name": wanted, "persona": settings.virtual_card}
        )
    if backend == "pcsc":
        return READERS.create({"backend": backend, "name": wanted, "exclude": tuple(exclude)})
    return READERS.create({"backend": backend, "name": wanted})


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


def profile_dir_of(scenario: str) -> Path:
    """The folder of a profile given by path, else the built-in profile folder."""
    path = Path(scenario)
    return path.resolve().parent if path.suffix == ".toml" else PROFILE_DIR


def scenario_profiles(names: list[str] | None) -> list[Profile]:
    """The profiles a status command reports on.

    :param names: ``--scenario`` values, or ``None`` for every built-in profile
    :raises ProfileError: a profile that cannot be loaded
    """
    chosen = names or sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))
    return [load_profile(name) for name in chosen]


@dataclass
class Terminal(Closing):
    """A terminal built from its settings: what ``sscard tap`` and ``sscard run`` decide with.

    Close it (or use it as a context manager) to close the module, the platform link, the
    indicators and the store, in the reverse order of opening. Its profile, store and
    indicators are its pipeline's.

    :param settings: the settings it was built from
    :param pipeline: the validation pipeline (journal, then indicator)
    :param module: the security module, or ``None``
    :param pcsc: the PC/SC access the security module (a PSAM) uses
    :param reader_names: the card readers to watch (names or unique parts; empty: any)
    :param excluded_readers: readers never taken for a card (the PSAM's)
    :param scanners: the code scanners to watch (``serial:PORT[@BAUD]``, ``camera:N``, ``stdin``)
    :param fare_module: the transit PSAM (or development SAM) fares are taken with, or ``None``
    """

    settings: Settings
    pipeline: Pipeline
    module: SecurityModule | None
    pcsc: PcscReader
    reader_names: tuple[str, ...] = ()
    excluded_readers: tuple[str, ...] = ()
    scanners: tuple[str, ...] = ()
    fare_module: SecurityModule | None = None
    _stack: ExitStack = field(default_factory=ExitStack, repr=False)
    _parts: ExitStack = field(default_factory=ExitStack, repr=False)

    @property
    def profile(self) -> Profile:
        """The scenario profile (the pipeline's)."""
        return self.pipeline.profile

    @property
    def store(self) -> Store:
        """The offline store (the pipeline's)."""
        return self.pipeline.store

    @property
    def indicator(self) -> Indicator | None:
        """The indicators (the pipeline's), or ``None``."""
        return self.pipeline.indicator

    def replace_pipeline(self, settings: Settings, profile: Profile, profile_dir: Path) -> None:
        """Decide with new settings and profile from now on (the daemon's reload): a new
        pipeline with its indicators and platform link, on the same store and module. When
        the new one cannot be built, the old one stays.

        :param settings: the new settings
        :param profile: the new profile
        :param profile_dir: its folder
        :raises SscardError: the new pipeline cannot be built (nothing changed)
        """
        with ExitStack() as stack:
            pipeline = open_pipeline(
                settings,
                profile,
                self.store,
                stack,
                profile_dir=profile_dir,
                fare_module=self.fare_module,
            )
            parts = stack.pop_all()
        old, self._parts = self._parts, parts
        self.settings, self.pipeline = settings, pipeline
        old.close()

    def adopt(self, part: SecurityModule) -> None:
        """Close a part opened later (a PSAM found after start) with the others.

        :param part: what to close with the terminal
        """
        self._stack.callback(part.close)

    def close(self) -> None:
        """Close every part; harmless when called twice."""
        try:
            self._parts.close()
        finally:
            self._stack.close()


def open_pipeline(
    settings: Settings,
    profile: Profile,
    store: Store,
    stack: ExitStack,
    *,
    profile_dir: Path = PROFILE_DIR,
    fare_module: SecurityModule | None = None,
) -> Pipeline:
    """The pipeline of a profile on an open store, with its indicators and platform link
    (closed by ``stack``) and, for a transit profile with a fare module, its purchase step;
    the daemon builds a new one when its settings are reloaded.

    :param settings: the terminal settings
    :param profile: the scenario profile
    :param store: the open store
    :param stack: closes the indicators and the platform link
    :param profile_dir: the folder relative files of the profile are taken from
    :param fare_module: the module fares are taken with (:func:`open_fare_module`), or ``None``
    :raises SscardError: an indicator that cannot start, a list file of the profile
    """
    indicator = stack.enter_context(
        closing_indicator(build_indicators(settings, profile, profile_dir))
    )
    online = open_online(settings, store, profile)
    if online is not None:
        stack.enter_context(online)
    return Pipeline(
        profile,
        store,
        terminal_id=settings.terminal_id,
        indicator=indicator,
        profile_dir=profile_dir,
        region=settings.sync_region,
        online=online,
        hotlines=hotlines_from(settings.hotlines),
        purse=transit_payments(settings, profile, store, fare_module),
    )


def open_terminal(
    settings: Settings,
    profile: Profile,
    *,
    profile_dir: Path = PROFILE_DIR,
    module: ModuleChoice | None = None,
    reader_names: tuple[str, ...] | None = None,
) -> Terminal:
    """Build a terminal: store, indicators, security module, platform link, pipeline.

    :param settings: the terminal settings
    :param profile: the scenario profile
    :param profile_dir: the folder relative files of the profile are taken from
    :param module: the security module to open (default: the settings' choice,
        :meth:`ModuleChoice.from_settings`)
    :param reader_names: the card readers to watch (default: ``[daemon] readers``)
    :raises SscardError: a part that cannot be opened (store, keys, indicator, module); what
        was opened already is closed again
    """
    choice = module if module is not None else ModuleChoice.from_settings(settings)
    with ExitStack() as stack:
        store = stack.enter_context(open_store(settings))
        pcsc = stack.enter_context(PcscReader())
        _, security = open_chosen(choice, pcsc, settings)
        if security is not None:
            stack.enter_context(security)
        fare_module = open_fare_module(settings, pcsc, stack)
        parts = stack.enter_context(ExitStack())
        pipeline = open_pipeline(
            settings, profile, store, parts, profile_dir=profile_dir, fare_module=fare_module
        )
        if isinstance(pipeline.purse, TransitPayments):  # a daemon killed mid-purchase
            pipeline.purse.at_start(pipeline)
        terminal = Terminal(
            settings=settings,
            pipeline=pipeline,
            module=security,
            pcsc=pcsc,
            reader_names=settings.daemon_readers if reader_names is None else reader_names,
            excluded_readers=tuple(
                r for r in (choice.sam_reader, settings.payments_psam_reader) if r
            ),
            scanners=settings.daemon_scanners,
            fare_module=fare_module,
            _parts=parts.pop_all(),
            _stack=stack.pop_all(),
        )
    return terminal
