"""The edges of the terminal: PC/SC readers, security modules, scanners, indicators and the
virtual cards. Drivers are blocking and start no threads of their own (the vpcd bridge of the
virtual cards is the one exception: it plays the card, not the terminal)."""
