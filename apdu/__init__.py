"""Pure card protocol for the social security card: APDUs, status words, T=0 handling,
TLV and ATR codecs, the SSC application and the national terminal interface.

Nothing in this package performs I/O: a card is reached through any object that satisfies
:class:`apdu.transport.Connection`.
"""
