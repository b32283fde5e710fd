"""The security module a command's options ask for (shared by ``sscard read`` and ``sscard tap``).

``--sam-reader NAME`` (a PSAM in a reader slot), ``--hsm URL`` (else ``[security] hsm_url``),
``--soft-sam KEYFILE`` (else ``[security] soft_sam_keys``; development only, refused in
production); none of them: no module.
"""

from __future__ import annotations

import argparse

from apdu.sam import SecurityModule
from config.settings import Settings
from drivers.hsm import HsmModule
from drivers.keyfile import read_secret
from drivers.pcsc import PcscReader
from drivers.psam import open_psam
from drivers.soft_sam import open_soft_sam


def open_module(
    args: argparse.Namespace, readers: PcscReader, settings: Settings
) -> tuple[bool, SecurityModule | None]:
    """The security module the options ask for.

    :param args: parsed options with ``sam_reader``, ``hsm`` and ``soft_sam``
    :param readers: the PC/SC readers (for the PSAM)
    :param settings: the terminal settings (HSM URL, token, timeout; production flag)
    :returns: (authenticate?, the module or ``None``)
    :raises SscardError: the module cannot be opened
    """
    if args.sam_reader:
        return True, open_psam(readers, args.sam_reader)
    url = args.hsm or (None if args.soft_sam else settings.hsm_url)
    if url:
        token = (
            read_secret(settings.hsm_token_file, "HSM token") if settings.hsm_token_file else None
        )
        return True, HsmModule(url, timeout=settings.hsm_timeout_s, token=token)
    soft_sam = args.soft_sam or settings.soft_sam_keys
    if soft_sam:
        return True, open_soft_sam(soft_sam, settings)
    return False, None
