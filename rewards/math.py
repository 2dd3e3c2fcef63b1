"""The `math` reward: does the completion's final answer equal the reference answer?

Scoring is two-tier. Most answers in grade-school and competition sets are plain numbers,
so those are compared in-process with exact decimal arithmetic (thousands of samples per
second). Anything else (`\\frac{1}{2}`, `2\\sqrt{3}`, `x = 5`) goes to `symbolic_equal` in a
sandboxed worker process (`rewards/sandbox.py`) with a hard per-sample time limit, so an
adversarial answer such as `9^{9^{9^9}}` costs `timeout_s` seconds and a 0, never a hang.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from rewards.extract import extract_answer
from rewards.sandbox import Sandbox
from rewards.symbolic import DIFFERENT, EQUAL, GOLD_UNPARSEABLE
from rewards.verdict import Verdict, completion_text

# Answers longer than this are not final answers but runaway text; parsing them would
# only feed the worker something slow to reject.
MAX_ANSWER_CHARS = 1_000

# A plain decimal, optionally with thousands separators, currency sign and unit words:
# "1,234", "-0.5", "\$18", "18 dollars". Commas must group by three so "1,2" (a pair) is
# not read as twelve; "5 pi" is a multiple of pi, not five in units of "pi".
_PLAIN_NUMBER = re.compile(
    r"(?:\\?\$)?(?P<number>[-+]?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|\.\d+))"
    r"(?:\s+(?!(?:pi|sqrt|exp|log|ln)\b)[A-Za-z]{2,}\.?)*"
)


class MathReward:
    """Reward 1.0 when the completion's final answer equals `reference_answer`, else 0.0.

    `None` when the reference answer is missing or unreadable (cannot judge). Slow
    symbolic checks that exceed `timeout_s` seconds score 0.0 with `timed_out=True`.
    Holds one worker process once a symbolic check is needed; `close()` (or `with`)
    stops it, and it is also stopped at garbage collection and interpreter exit.

    >>> math_reward = MathReward()
    >>> math_reward(
    ...     prompts=["2+2?", "Half of 1?", "3*3?"],
    ...     completions=["The answer is 4.", [{"role": "assistant", "content": r"\\boxed{0.5}"}], "10"],
    ...     reference_answer=["4", r"\\frac{1}{2}", "9"],
    ... )
    [1.0, 1.0, 0.0]
    >>> math_reward.close()
    """

    __name__ = "math"  # TRL names the reward's logged metrics after reward_func.__name__
    cost = 1  # the filter stack runs cheaper rewards first

    def __init__(self, timeout_s: float = 2.0):
        if not timeout_s > 0:
            raise ValueError(f"math reward: timeout_s must be a positive number of seconds, got {timeout_s}")
        self.timeout_s = timeout_s
        self._sandbox = Sandbox("rewards.symbolic:symbolic_equal", timeout_s=timeout_s)

    def __call__(
        self, prompts: list, completions: list, reference_answer: list | None = None, **kwargs: Any
    ) -> list[float | None]:
        return [v.score for v in self.verdicts(prompts, completions, reference_answer, **kwargs)]

    def verdicts(
        self, prompts: list, completions: list, reference_answer: list | None = None, **kwargs: Any
    ) -> list[Verdict]:
        """One `Verdict` per completion; extra dataset columns in `kwargs` are ignored."""
        if reference_answer is None:
            raise ValueError(
                "the math reward needs a `reference_answer` column in the dataset "
                f"(got columns: {sorted(kwargs) or 'none'})"
            )
        if len(reference_answer) != len(completions):
            raise ValueError(
                f"got {len(completions)} completions but {len(reference_answer)} reference answers"
            )
        return [self.judge(c, r) for c, r in zip(completions, reference_answer)]

    def judge(self, completion: Any, reference: Any) -> Verdict:
        """Score one completion (string or message list) against one reference answer."""
        gold = _clean(reference)
        if not gold:
            return Verdict(None, "missing reference answer")
        answer = extract_answer(completion_text(completion))
        if answer is None:
            return Verdict(0.0, "no answer found")
        pred = _clean(answer)
        if pred == gold:
            return Verdict(1.0, f"answer {_preview(pred)} matches the reference exactly")
        pred_number, gold_number = _as_number(pred), _as_number(gold)
        if pred_number is not None and gold_number is not None:
            return _compared(pred_number == gold_number, pred, gold)
        if len(pred) > MAX_ANSWER_CHARS:
            return Verdict(0.0, f"answer too long to check ({len(pred)} characters)")
        return self._judge_symbolically(pred, gold)

    def _judge_symbolically(self, pred: str, gold: str) -> Verdict:
        result = self._sandbox.call(pred, gold)
        if result.timed_out:
            return Verdict(0.0, result.error, timed_out=True)
        if result.worker_failed:
            return Verdict(None, f"math verifier unavailable: {result.error}")
        if result.error:
            return Verdict(0.0, f"could not check answer {_preview(pred)}: {result.error}")
        if result.value == GOLD_UNPARSEABLE:
            return Verdict(None, f"reference answer {_preview(gold)} could not be parsed")
        if result.value in (EQUAL, DIFFERENT):
            return _compared(result.value == EQUAL, pred, gold)
        return Verdict(0.0, f"answer {_preview(pred)} could not be parsed")

    def close(self) -> None:
        """Stop the verifier worker; a later call starts a new one."""
        self._sandbox.close()

    def __enter__(self) -> MathReward:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def _compared(same: bool, pred: str, gold: str) -> Verdict:
    relation = "equals" if same else "differs from"
    return Verdict(1.0 if same else 0.0, f"answer {_preview(pred)} {relation} reference {_preview(gold)}")


def _clean(value: Any) -> str:
    """Answer text without the wrapping that does not change its meaning."""
    if value is None:
        return ""
    return str(value).strip().lstrip("$").rstrip(" \t\n.$").strip()


def _as_number(text: str) -> Decimal | None:
    """`text` as an exact decimal when it is a plain number (see `_PLAIN_NUMBER`)."""
    match = _PLAIN_NUMBER.fullmatch(text)
    if match is None:
        return None
    try:
        return Decimal(match["number"].replace(",", ""))
    except InvalidOperation:
        return None


def _preview(text: str, limit: int = 60) -> str:
    """Quote an answer for a reason string, cut short so reasons stay one line."""
    return repr(text if len(text) <= limit else text[:limit] + "...")
