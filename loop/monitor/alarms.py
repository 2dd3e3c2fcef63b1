"""Alarm rules over the per-round metrics history: pure checks, and the record of what fired.

A rule fires after a round when every one of its conditions holds on the history (one dict
per finished round, as in metrics.jsonl). A condition on a metric the history lacks, or has
too few rounds of, does not hold: an alarm never fires on missing data.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from policies.atomic import write_text
from loop.monitor.config import AlarmRule, Condition
from loop.rundir import RunDirError


@dataclass(frozen=True)
class Alarm:
    round: int
    rule: str
    action: str
    message: str  # one line: the rule and the values that tripped it


def _series(history: Sequence[dict], metric: str) -> list[float]:
    """The metric's values over the rounds that logged it (NaN and missing skipped)."""
    values = [row.get(metric) for row in history]
    return [float(v) for v in values if isinstance(v, (int, float)) and not math.isnan(v)]


def holds(cond: Condition, history: Sequence[dict]) -> str | None:
    """A short reason if the condition holds on the latest round of `history`, else None."""
    if not history or cond.metric not in history[-1]:
        return None
    values = _series(history, cond.metric)
    if not values or values[-1] != float(history[-1][cond.metric]):
        return None
    last = values[-1]
    if cond.above is not None:
        return f"{cond.metric} = {last:.4g} > {cond.above:g}" if last > cond.above else None
    if cond.below is not None:
        return f"{cond.metric} = {last:.4g} < {cond.below:g}" if last < cond.below else None
    if cond.drop_from is not None:
        ref = max(values) if cond.drop_from == "best" else values[0]
        if ref > 0 and last <= ref * (1 - cond.by):
            return f"{cond.metric} fell {1 - last / ref:.0%} from its {cond.drop_from} {ref:.4g} to {last:.4g}"
        return None
    return _trend(cond, values)


def _trend(cond: Condition, values: list[float]) -> str | None:
    if len(values) < cond.rounds + 1:
        return None
    window = values[-(cond.rounds + 1) :]
    changes = [b - a for a, b in zip(window, window[1:])]
    shown = " -> ".join(f"{v:.4g}" for v in window)
    if cond.trend == "rising" and all(c > cond.min_change for c in changes):
        return f"{cond.metric} rose {cond.rounds} rounds ({shown})"
    if cond.trend == "falling" and all(c < -cond.min_change for c in changes):
        return f"{cond.metric} fell {cond.rounds} rounds ({shown})"
    if cond.trend == "not_rising" and window[-1] - window[0] <= cond.min_change:
        return f"{cond.metric} did not rise over {cond.rounds} rounds ({shown})"
    return None


def check_alarms(history: Sequence[dict], rules: Sequence[AlarmRule]) -> list[Alarm]:
    """The rules that fire on the latest round of `history`."""
    fired = []
    for rule in rules:
        reasons = [holds(cond, history) for cond in rule.when]
        if all(reasons):
            fired.append(Alarm(int(history[-1]["round"]), rule.name, rule.action,
                               f"alarm {rule.name} ({rule.action}): " + "; ".join(reasons)))
    return fired


def record_alarms(path: Path, alarms: Sequence[Alarm]) -> None:
    """Add to alarms.jsonl, replacing earlier lines of the same (round, rule): a resumed round
    that fires again is recorded once."""
    rows = read_alarms(path)
    new = {(a.round, a.rule) for a in alarms}
    rows = [r for r in rows if (r["round"], r["rule"]) not in new] + [asdict(a) for a in alarms]
    rows.sort(key=lambda r: (r["round"], r["rule"]))
    write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


_ALARM_FIELDS = {"round": int, "rule": str, "action": str, "message": str}


def read_alarms(path: Path) -> list[dict]:
    """The records of alarms.jsonl (none when it is missing); a damaged line is one RunDirError
    naming the file and line."""
    if not path.exists():
        return []
    try:
        text = path.read_bytes().decode(errors="replace")
    except OSError as err:
        raise RunDirError(f"{path} cannot be read ({err.strerror}); restore or delete it") from None
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if not (isinstance(row, dict) and all(isinstance(row.get(k), t) and not isinstance(row.get(k), bool)
                                              for k, t in _ALARM_FIELDS.items())):
            raise RunDirError(f"{path}:{number} is not an alarm record ({', '.join(_ALARM_FIELDS)}); "
                              "fix or delete that line")
        rows.append(row)
    return rows


class AlarmStop(RuntimeError):
    """An alarm with `action: stop` fired: the round finished, and the run stops after it."""
