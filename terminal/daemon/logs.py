"""Log lines as JSON objects, one per line, for journald and log shippers.

The project logs ``event=name key=value …`` messages (STYLE.md); :class:`JsonFormatter` keeps
the message and lifts its ``key=value`` pairs into fields, so ``jq 'select(.event=="tap")'``
works. Personal data is masked by the code that logs (``mask_card_number`` …) before a line is
made; the formatter adds only the time, level, logger, thread and, for errors, the traceback.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re

#: ``key=value`` where value is a quoted repr, or runs to the next space
_PAIR = re.compile(r"(?:^|\s)([a-z_][a-z0-9_]*)=('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|\S*)")
RESERVED = frozenset({"ts", "level", "logger", "thread", "msg", "exc"})


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``ts``, ``level``, ``logger``, ``thread``, ``msg``, the
    message's ``key=value`` fields, and ``exc`` (the traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        """Format one record.

        :param record: the log record
        """
        message = record.getMessage()
        out: dict[str, object] = {
            "ts": _iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "thread": record.threadName,
            "msg": message,
        }
        for key, value in _PAIR.findall(message):
            if key not in RESERVED and key not in out:
                out[key] = value[1:-1] if value[:1] in "'\"" and len(value) > 1 else value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def use_json_logs() -> None:
    """Give every handler of the root logger the JSON formatter (``sscard run``)."""
    formatter = JsonFormatter()
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)


def _iso(created: float) -> str:
    return dt.datetime.fromtimestamp(created, dt.UTC).isoformat(timespec="milliseconds")
