"""The edges of the terminal: PC/SC readers, security modules, scanners, indicators and the
virtual cards. Drivers are blocking and start no threads of their own (the emulators are the
exception — the vpcd bridge of the virtual cards, the virtual indicator board: they play the
device, not the terminal)."""
