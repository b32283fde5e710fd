"""Faithful emulators of the social security card (and later the PSAM), reachable in-process
or through a real pcscd via the vsmartcard vpcd driver."""
