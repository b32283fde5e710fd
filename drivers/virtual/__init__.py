"""Faithful emulators of the social security card, the PSAM, a transit purse, a gate board and a
serial scanner, and the reference HSM service, reachable in-process or through a real pcscd via
the vsmartcard vpcd driver.

The package ships two folders of data, used by ``sscard demo``, ``sscard qr``, ``sscard
platform init --test-keys`` and the test suite alike (the tests read the same files):

* :data:`PERSONAS` (``personas/``): synthetic card holders with valid check digits, one TOML
  file each (:mod:`drivers.virtual.persona`);
* :data:`TEST_KEYS` (``test_keys/``): the **TEST KEYS** the virtual cards, the virtual PSAM, the
  software SAM and the e-card test platform derive from. They are public: a production terminal
  refuses every one of them (:mod:`ecard.testkeys` knows them by fingerprint).
"""

from pathlib import Path

#: the folder of the demo's persona files
PERSONAS = Path(__file__).resolve().parent / "personas"
#: the folder of the public TEST KEYS (never on a production terminal)
TEST_KEYS = Path(__file__).resolve().parent / "test_keys"
