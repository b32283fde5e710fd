"""``sscard run``: the terminal daemon (:class:`~terminal.daemon.core.Daemon`).

Modules: :mod:`~terminal.daemon.core` (start, main loop, signals, reload, status),
:mod:`~terminal.daemon.inputs` (reader and scanner threads), :mod:`~terminal.daemon.worker`
(the decision worker), :mod:`~terminal.daemon.sync_thread`, :mod:`~terminal.daemon.supervisor`
(watchdog, device health), :mod:`~terminal.daemon.devices` (all reader and scanner access),
:mod:`~terminal.daemon.metrics`, :mod:`~terminal.daemon.logs`, :mod:`~terminal.daemon.notify`.
"""
