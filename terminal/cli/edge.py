"""The edge of the ``sscard`` command line: what escapes a command becomes one line on stderr.

``terminal.cli.main`` runs every command through :func:`run_command`, the one place (like
ykman's ``CliFail`` handled in ``main``) that turns a failure into what the user sees. A
handler that has its own output format for a failure (``sscard read --format json``,
``sscard pin``) prints it itself; every other failure ends here::

    what escaped the command               the line on stderr                          exit
    SscardError with a national code       sscard: <code>: <national message>: <reason>  2
    SscardError or ConfigError without one sscard: <reason>                              2
      (both: the line and the status of the error's row in terminal.outcomes.OUTCOMES)
    OSError (settings, store, key, log)    sscard: <file>: <what the system said>        2
    BrokenPipeError (stdout closed early)  sscard: standard output closed early          2
    KeyboardInterrupt (Ctrl-C)             sscard: interrupted                         130
    any other exception: a bug             sscard: internal error: <type>: <message> (…) 2

A bug never shows the user a traceback, but it stays visible: it is logged at ERROR with its
traceback (``event=internal_error``) to the log file of ``$SSCARD_LOG_FILE``; the console shows
that record only with ``-vv``, and the line on stderr says where to look. Every known failure
is logged at DEBUG with its traceback too (``event=command_failed``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable

from apdu.errors import SscardError
from config.errors import ConfigError

log = logging.getLogger("sscard")

#: set on a log record the console shows only with -vv (its traceback is for developers)
DEVELOPER_ONLY = "sscard_developer_only"


def one_line(text: str) -> str:
    """A message on one line (a library's message may span several).

    :param text: the message
    """
    return " ".join(text.split())


def os_error_line(exc: OSError) -> str:
    """``sscard: <file>: <what the system said>`` for an operating-system error.

    :param exc: the error
    """
    what = exc.strerror or str(exc) or type(exc).__name__
    names = [str(n) for n in (exc.filename, exc.filename2) if n is not None]
    return one_line(f"sscard: {': '.join([*names, what])}")


def run_command(command: Callable[[], int], *, log_file: str | None) -> int:
    """Run a command and answer every failure with one line on stderr and an exit status.

    :param command: the command (it returns its exit status)
    :param log_file: the log file a bug's traceback goes to, if there is one
    :returns: the command's exit status, or the status of its failure (table above)
    :raises: nothing but ``SystemExit``
    """
    failed: int | None = None  # the table's exit status of a known error
    try:
        status = command()
        sys.stdout.flush()  # a closed stdout shows here, not in the interpreter's exit
        return status
    except (SscardError, ConfigError) as exc:
        log.debug("event=command_failed type=%s", type(exc).__name__, exc_info=True)
        from terminal.outcomes import error_line, outcome  # the table loads when a command fails

        line = one_line(error_line(exc))
        failed = outcome(exc).exit_status
    except KeyboardInterrupt:
        from terminal.outcomes import EXIT_INTERRUPTED

        _say("sscard: interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader of stdout went away (`sscard journal tail | head -1`): later writes and the
        # flush at exit would fail again, so stdout goes to /dev/null from here on
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        line = "sscard: standard output closed early (broken pipe)"
    except OSError as exc:
        log.debug("event=command_failed type=%s", type(exc).__name__, exc_info=True)
        line = os_error_line(exc)
    except Exception as exc:  # a bug: one line for the user, the traceback for the log
        log.error(
            "event=internal_error type=%s",
            type(exc).__name__,
            exc_info=True,
            extra={DEVELOPER_ONLY: True},
        )
        where = f"traceback in {log_file}" if log_file else "run with -vv for the traceback"
        line = one_line(f"sscard: internal error: {type(exc).__name__}: {exc} ({where})")
    from terminal.outcomes import EXIT_FAILURE

    _say(line)
    return EXIT_FAILURE if failed is None else failed


def _say(line: str) -> None:
    with contextlib.suppress(OSError):
        sys.stdout.flush()  # what the command printed comes before the reason it stopped
    print(line, file=sys.stderr, flush=True)


def hide_developer_records(record: logging.LogRecord) -> bool:
    """A console filter: drop the records only ``-vv`` shows (:data:`DEVELOPER_ONLY`).

    :param record: the log record
    """
    return not getattr(record, DEVELOPER_ONLY, False)
