"""The security module a command's options ask for (shared by ``sscard read`` and ``sscard tap``).

``--sam-reader NAME`` (a PSAM in a reader slot), ``--hsm URL`` (else ``[security] hsm_url``),
``--soft-sam KEYFILE`` (development only); none of them: no module.
"""

from __future__ import annotations

import argparse

from apdu.errors import SscardError
from apdu.sam import SecurityModule
from config.settings import Settings
from drivers.hsm import HsmModule
from drivers.keyfile import read_secret
from drivers.pcsc import PcscSlotReader
from drivers.psam import open_psam
from drivers.readers import Reader
from drivers.soft_sam import open_soft_sam


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
    if args.sam_reader:
        if not isinstance(reader, PcscSlotReader):
            raise SscardError(
                "--sam-reader: a PSAM in a reader slot needs the pcsc reader back-end"
            )
        return True, open_psam(reader.pcsc, args.sam_reader)
    url = args.hsm or (None if args.soft_sam else settings.hsm_url)
    if url:
        token = (
            read_secret(settings.hsm_token_file, "HSM token") if settings.hsm_token_file else None
        )
        return True, HsmModule(url, timeout=settings.hsm_timeout_s, token=token)
    if args.soft_sam:
        return True, open_soft_sam(args.soft_sam, settings)
    return False, None
