"""The security module a command's options ask for (shared by ``sscard read`` and ``sscard tap``),
or the settings (``sscard run``).

``--sam-reader NAME`` (a PSAM in a reader slot), ``--hsm URL`` (else ``[security] hsm_url``),
``--soft-sam KEYFILE`` (else ``[security] soft_sam_keys``; development only, refused in
production); none of them: no module. The daemon takes
``[daemon] sam_reader``, ``[security] hsm_url`` and ``[security] soft_sam_keys``, in that order.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from apdu.errors import SscardError
from apdu.sam import SecurityModule
from config.settings import Settings
from drivers.hsm import HsmModule
from drivers.keyfile import read_secret
from drivers.pcsc import PcscReader, PcscSlotReader
from drivers.psam import open_psam
from drivers.readers import Reader
from drivers.soft_sam import open_soft_sam


@dataclass(frozen=True, slots=True)
class ModuleChoice:
    """Which security module to open: the first of these that is set.

    :param sam_reader: the reader holding a PSAM
    :param hsm_url: the HSM service
    :param soft_sam: the software SAM's root-key file (development only)
    """

    sam_reader: str | None = None
    hsm_url: str | None = None
    soft_sam: str | Path | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace, settings: Settings) -> ModuleChoice:
        """The options' choice (``--hsm`` defaults to ``[security] hsm_url``).

        :param args: parsed options with ``sam_reader``, ``hsm`` and ``soft_sam``
        :param settings: the terminal settings
        """
        url = args.hsm or (None if args.soft_sam else settings.hsm_url)
        return cls(args.sam_reader, url, args.soft_sam or settings.soft_sam_keys)

    @classmethod
    def from_settings(cls, settings: Settings) -> ModuleChoice:
        """The daemon's choice: ``[daemon] sam_reader``, ``[security] hsm_url``, ``soft_sam_keys``.

        :param settings: the terminal settings
        """
        return cls(settings.daemon_sam_reader, settings.hsm_url, settings.soft_sam_keys)


def open_chosen(
    choice: ModuleChoice, readers: PcscReader | None, settings: Settings
) -> tuple[bool, SecurityModule | None]:
    """Open the chosen security module.

    :param choice: which module
    :param readers: the PC/SC readers (for the PSAM; ``None`` without PC/SC)
    :param settings: the terminal settings (HSM token, timeout; production flag)
    :returns: (authenticate?, the module or ``None``)
    :raises SscardError: the module cannot be opened
    """
    if choice.sam_reader:
        if readers is None:
            raise SscardError(
                "--sam-reader: a PSAM in a reader slot needs the pcsc reader back-end"
            )
        return True, open_psam(readers, choice.sam_reader)
    if choice.hsm_url:
        token = (
            read_secret(settings.hsm_token_file, "HSM token") if settings.hsm_token_file else None
        )
        return True, HsmModule(choice.hsm_url, timeout=settings.hsm_timeout_s, token=token)
    if choice.soft_sam:
        return True, open_soft_sam(choice.soft_sam, settings)
    return False, None


def open_module(
    args: argparse.Namespace, reader: Reader, settings: Settings
) -> tuple[bool, SecurityModule | None]:
    """The security module the options ask for.

    :param args: parsed options with ``sam_reader``, ``hsm`` and ``soft_sam``
    :param reader: the card reader (:func:`terminal.compose.open_reader`): a PSAM sits in
        another slot of its PC/SC service
    :param settings: the terminal settings (HSM URL, token, timeout; production flag)
    :returns: (authenticate?, the module or ``None``)
    :raises SscardError: the module cannot be opened, or a PSAM asked for without PC/SC
    """
    pcsc = reader.pcsc if isinstance(reader, PcscSlotReader) else None
    return open_chosen(ModuleChoice.from_args(args, settings), pcsc, settings)
