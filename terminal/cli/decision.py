"""How the command line shows a decision (``sscard tap``, ``sscard qr verify``, ``sscard scan``):
its lines, and its exit status (0 accepted, 1 refused or "try again"; 2, no decision made, is
a failure's: the exit statuses are :mod:`terminal.outcomes`')."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from terminal.pipeline import Decision


def decision_status(decision: Decision) -> int:
    """The exit status of a command that made a decision: ``EXIT_OK`` when it accepted,
    ``EXIT_REFUSED`` when it refused or asked to try again.

    :param decision: the decision
    """
    from terminal.outcomes import EXIT_OK, EXIT_REFUSED  # the table loads when it is needed

    return EXIT_OK if decision.accepted else EXIT_REFUSED


def print_decision(decision: Decision, fmt: str) -> None:
    """Print a decision as JSON or as a short table (the record in full: it is the output
    the scenario exists to produce).

    :param decision: the decision
    :param fmt: ``json`` or ``table``
    """
    out = decision.to_json()
    if fmt == "json":
        print(json.dumps(out, ensure_ascii=False))
        return
    lines = [
        f"{'结果 outcome':<18} {out['outcome']} ({out['reason']})",
        f"{'提示 prompt':<18} {out['prompt_zh']} / {out['prompt_en']}",
    ]
    if out["advice_zh"]:
        lines.append(f"{'建议 advice':<18} {out['advice_zh']} / {out['advice_en']}")
    lines += [f"{k:<18} {v}" for k, v in out["detail"].items()]
    lines += [f"{k:<18} {v}" for k, v in (decision.record or {}).items()]
    if out["hotline"]:
        lines.append(out["hotline"])
    lines.append(f"{'流水号 journal seq':<18} {out['seq']}")
    print("\n".join(lines))
