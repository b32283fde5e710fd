"""In-process emulated-card tests.

A package so that its modules import as ``emulated.test_…``: ``tests/unit`` has modules of the
same basename (``test_medical``), and pytest's default import mode needs unique basenames
outside packages. ``tests/unit`` stays a plain folder: its modules import
``scripted_connection`` from it.
"""
