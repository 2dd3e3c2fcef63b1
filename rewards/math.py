"""The `math` reward: does the completion's final answer equal the reference answer?

Scoring is two-tier. Most answers in grade-school and competition sets are plain numbers,
so those are compared in-process with exact decimal arithmetic (thousands of samples per
second; `rewards/math_numbers.py`), and so are word answers (`\\text{odd}`). Anything else
(`\\frac{1}{2}`, `2\\sqrt{3}`, `x \\in [0, \\infty)`) goes to `symbolic_equal` in a
sandboxed worker process (`rewards/sandbox.py`) with a hard per-sample time limit, so an
adversarial answer such as `9^{9^{9^9}}` costs `timeout_s` seconds and a 0, never a hang.
A call's symbolic checks are deduplicated, looked up in a cache, and the rest spread over
`workers` worker processes (one per core by default).

A wrong answer scored 1 is the worst thing a verifier can do (RL trains on it), so what
cannot be verified (a comparison that collapses to a bare truth value, equations that
agree only by both having no solution, a timeout) scores 0 with the reason. So do answers
that only look right: arithmetic left undone against a numeric reference (`47+8-15`, which
may be the question copied), a value qualified in words (`3 \\text{ (or 4)}`), and a hedge
between two values (`3 \\lor 4`, `3 = 4`, `$-2$ or $2$`). Only the text after the reasoning is
read (`rewards.verdict.final_text`: after `</think>`; nothing while a `<think>` is open).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, NamedTuple

from rewards.extract import RULES, check_rules, find_answer
from rewards.extract_boxes import count_parts
from rewards.math_numbers import as_number, qualified, same_number, unevaluated, without_units
from rewards.sandbox import SandboxResult
from rewards.sandbox_pool import SandboxPool, default_workers
from rewards.symbolic import DIFFERENT, EQUAL, GOLD_UNPARSEABLE, NO_SOLUTIONS, TRUTH_VALUE
from rewards.verdict import Verdict, completion_text, final_text

# Answers longer than this are not final answers but runaway text; parsing them would
# only feed the worker something slow to reject.
MAX_ANSWER_CHARS = 1_000

# Symbolic checks remembered per reward, by (answer, reference): the same wrong answer
# recurs across a prompt's samples and across rounds. A few hundred bytes each.
CACHE_SIZE = 100_000

# Thousands commas in an answer that has one part: "1,000\\%", "2^{10} = 1,024".
_THOUSANDS_COMMA = re.compile(r"(?<![\d,.])\d{1,3}(?:,\d{3})+(?![\d,])")
_BRACKETS = re.compile(r"[()\[\]]|\\\{|\\langle")
# A multiple-choice answer: "C", "(C)", "C)", "\\text{(C)}", "\\textbf{(C)}"; after a
# closed label the option's text may follow ("(C) 12").
_CHOICE = re.compile(
    r"(?P<wrap>\\(?:text|textbf|textrm|mathrm|mathbf)\s*\{\s*)?"
    r"(?:\((?P<paren>[A-J])\)|(?P<bare>[A-J])(?P<close>\))?)\s*(?(wrap)\})(?P<rest>.*)",
    re.DOTALL,
)
_CHOICE_START = frozenset("(\\ABCDEFGHIJ")
_OPTION_LABEL = re.compile(r"\(?\b[A-J]\)")
_UNICODE_FORMS = str.maketrans({"\u2212": "-", "\u00a0": " ", "\u202f": " ", "\u00b0": "^\\circ"})
_MISSING = {"", "nan", "none", "null"}  # a missing value (None, NaN) once made text
# A list of option letters ("enter the letters separated by commas"): "A, D, F", "\\text{B, E}".
_LETTER_LIST = re.compile(r"\(?[A-Z]\)?(?:\s*,\s*\(?[A-Z]\)?)*")
_TEXT_LETTERS = re.compile(r"\\(?:text|textbf|textrm|mathrm|mbox)\s*\{([^{}]*)\}")
# LaTeX spacing before a unit in text: "18~\\text{dollars}".
_TILDE_BEFORE_TEXT = re.compile(r"~(?=\s*\\(?:text|mathrm|mbox))")
# LaTeX spacing between digit groups is a thousands separator, never a list:
# "10,\\!080", "1\\,000", "1{,}000", "100\\ 000".
_DIGIT_GROUP_SEPARATOR = re.compile(r"(?<=\d)(?:,\\!|\{,\}|\\[,!; ]|~)(?=\d{3}(?!\d))")
_MATH_DELIMITERS = re.compile(r"^(?:\$\$|\$|\\\(|\\\[)(?P<content>.*?)(?:\$\$|\$|\\\)|\\\])$", re.DOTALL)
# A word answer, as a whole: "odd", "\\text{No solution}", "\\textbf{even}".
_TEXT_WRAPPER = re.compile(r"^\\(?:text|textbf|textit|mathrm|mbox|operatorname)\s*\{(?P<content>[^{}]*)\}$")
_WORDS = re.compile(r"[A-Za-z]+(?:[ \-'][A-Za-z]+)*")
_CANNOT_VERIFY = {
    TRUTH_VALUE: "cannot verify: the comparison reduces to a bare true/false, not to values",
    NO_SOLUTIONS: "cannot verify: both equations/inequalities have no solution, which proves nothing",
}


class MathReward:
    """Reward 1.0 when the completion's final answer equals `reference_answer`, else 0.0.

    `None` when the reference answer is missing or unreadable (cannot judge). Answers that
    cannot be verified, and slow symbolic checks that exceed `timeout_s` seconds (marked
    `timed_out=True`), score 0.0. `extract` orders the extraction rules (see
    `rewards.extract.RULES`; drop one to disable it); `precision` is the number of decimal
    places a float answer must match. Symbolic checks run in up to `workers` processes
    (default: one per core), started once one is needed; `close()` (or `with`) stops them,
    and they are also stopped at garbage collection and interpreter exit.

    >>> math_reward = MathReward()
    >>> math_reward(
    ...     prompts=["2+2?", "Half of 1?", "3*3?", "Domain?"],
    ...     completions=["The answer is 4.", [{"role": "assistant", "content": r"\\boxed{0.5}"}], "10",
    ...                  r"so we get $x \\in [1, \\infty)$."],
    ...     reference_answer=["4", r"\\frac{1}{2}", "9", r"x \\in [0, \\infty)"],
    ... )
    [1.0, 1.0, 0.0, 0.0]
    >>> math_reward.close()
    """

    __name__ = "math"  # TRL names the reward's logged metrics after reward_func.__name__
    cost = 1  # the filter stack runs cheaper rewards first
    sample_columns = ("reference_answer",)  # a verdict reads only these (rewards.compose)

    def __init__(
        self,
        timeout_s: float = 2.0,
        extract: list[str] | tuple[str, ...] = RULES,
        precision: int = 6,
        workers: int | None = None,
    ):
        if not timeout_s > 0:
            raise ValueError(f"math reward: timeout_s must be a positive number of seconds, got {timeout_s}")
        if not (isinstance(precision, int) and 0 < precision <= 30):
            raise ValueError(f"math reward: precision must be a number of decimal places in 1..30, got {precision!r}")
        try:
            self.rules = check_rules(extract)
        except ValueError as exc:
            raise ValueError(f"math reward: extract: {exc}") from None
        if workers is not None and not (isinstance(workers, int) and workers >= 1):
            raise ValueError(f"math reward: workers must be a positive number of processes, got {workers!r}")
        self.timeout_s = timeout_s
        self.precision = precision
        self.workers = workers or default_workers()
        self._pool = SandboxPool("rewards.symbolic:symbolic_equal", timeout_s=timeout_s, workers=self.workers)
        self._cache: OrderedDict[tuple[str, str], Any] = OrderedDict()

    def __call__(
        self, prompts: list, completions: list, reference_answer: list | None = None, **kwargs: Any
    ) -> list[float | None]:
        return [v.score for v in self.verdicts(prompts, completions, reference_answer, **kwargs)]

    def verdicts(
        self, prompts: list, completions: list, reference_answer: list | None = None, **kwargs: Any
    ) -> list[Verdict]:
        """One `Verdict` per completion; extra dataset columns in `kwargs` are ignored."""
        return self.start_verdicts(prompts, completions, reference_answer, **kwargs)()

    def start_verdicts(
        self, prompts: list, completions: list, reference_answer: list | None = None, **kwargs: Any
    ) -> Callable[[], list[Verdict]]:
        """`verdicts` in two steps: what this process decides is judged now and the symbolic checks
        start in the workers; the function returned waits for them and gives the verdicts. A
        caller does its other work in between (`rewards.compose.start_scoring`)."""
        if reference_answer is None:
            raise ValueError(
                "the math reward needs a `reference_answer` column in the dataset "
                f"(got columns: {sorted(kwargs) or 'none'})"
            )
        if len(reference_answer) != len(completions):
            raise ValueError(
                f"got {len(completions)} completions but {len(reference_answer)} reference answers"
            )
        golds: dict[str | None, _Gold] = {}  # n samples share a reference: read it once
        first_pass = [self._judge_directly(c, _gold_of(r, golds)) for c, r in zip(completions, reference_answer)]
        checks = {(item.pred, item.gold) for item in first_pass if isinstance(item, _SymbolicCheck)}
        symbolic = self._start_symbolic(checks)

        def finish() -> list[Verdict]:
            results = symbolic()
            return [
                _symbolic_verdict(results[item.pred, item.gold], item) if isinstance(item, _SymbolicCheck) else item
                for item in first_pass
            ]

        return finish

    def judge(self, completion: Any, reference: Any) -> Verdict:
        """Score one completion (string or message list) against one reference answer."""
        return self.verdicts(["q"], [completion], reference_answer=[reference])[0]

    def _judge_directly(self, completion: Any, reference: _Gold) -> Verdict | _SymbolicCheck:
        """The verdict when no symbolic check is needed, else the check to run."""
        gold, parts = reference.text, reference.parts
        if gold.lower() in _MISSING:
            return Verdict(None, "missing reference answer")
        text = completion_text(completion)
        found = find_answer(final_text(text), self.rules, parts=parts)
        if found is None:
            thought = "<think>" in text or "</think>" in text
            return Verdict(0.0, "no answer after the reasoning" if thought else "no answer found")
        pred = normalize_answer(found.text)
        where = f"({found.rule})"
        pred_letters, gold_letters = _letters(pred), reference.letters
        if pred_letters and gold_letters and len(pred_letters) + len(gold_letters) > 2:
            return _compared(pred_letters == gold_letters, pred, gold, where)
        gold_choice = reference.choice
        if gold_choice is not None:
            pred_choice = _choice(pred)
            if pred_choice is not None:
                return _compared(pred_choice == gold_choice, pred, gold, where)
        else:
            pred = _option_text(pred)
        if parts == 1 and "," in pred and not _BRACKETS.search(pred):
            pred = _THOUSANDS_COMMA.sub(lambda m: m.group().replace(",", ""), pred)
        if pred == gold:
            return Verdict(1.0, f"answer {_preview(pred)} {where} matches the reference exactly")
        pred_number, gold_number = as_number(pred), reference.number
        if pred_number is not None and gold_number is not None:
            (pred_variable, pred_value), (gold_variable, gold_value) = pred_number, gold_number
            # "x = 5" answers "5", but not "y = 5".
            same_variable = pred_variable == gold_variable or None in (pred_variable, gold_variable)
            same_value = same_number(pred_value, gold_value, self.precision)
            return _compared(same_value and same_variable, pred, gold, where)
        pred_words, gold_words = _as_words(pred), reference.words
        if pred_words is not None and gold_words is not None:
            return _compared(pred_words == gold_words, pred, gold, where)
        if len(pred) > MAX_ANSWER_CHARS:
            return Verdict(0.0, f"answer too long to check ({len(pred)} characters)")
        if gold_number is not None and unevaluated(pred):
            return Verdict(0.0, f"answer {_preview(pred)} {where} is arithmetic left undone, not a value")
        if qualified(pred):
            return Verdict(0.0, f"answer {_preview(pred)} {where} qualifies its value in words, not a unit")
        return _SymbolicCheck(without_units(pred), gold, where)

    def _start_symbolic(self, pairs: set[tuple[str, str]]) -> Callable[[], dict[tuple[str, str], SandboxResult]]:
        """`symbolic_equal` of each (pred, gold) pair, from the cache or started in the workers;
        the function returned waits for the workers."""
        results = {pair: self._cache[pair] for pair in pairs if pair in self._cache}
        missing = sorted(pair for pair in pairs if pair not in results)
        pending = self._pool.submit([(*pair, self.precision) for pair in missing]) if missing else None

        def finish() -> dict[tuple[str, str], SandboxResult]:
            for pair, result in zip(missing, pending.result() if pending else ()):
                results[pair] = result
                # Only answers are remembered: a timeout or a crash depends on the moment.
                if not (result.error or result.timed_out or result.worker_failed):
                    self._cache[pair] = result
                    if len(self._cache) > CACHE_SIZE:
                        self._cache.popitem(last=False)
            return results

        return finish

    def close(self) -> None:
        """Stop the verifier workers; a later call starts new ones."""
        self._pool.close()

    def __enter__(self) -> MathReward:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


class _SymbolicCheck(NamedTuple):
    """A comparison the in-process paths could not decide, for the symbolic check."""

    pred: str
    gold: str
    where: str  # which extraction rule found the answer


def _symbolic_verdict(result: SandboxResult, check: _SymbolicCheck) -> Verdict:
    pred, gold, where = check
    if result.timed_out:
        return Verdict(0.0, f"cannot verify: {result.error}", timed_out=True)
    if result.worker_failed:
        return Verdict(None, f"math verifier unavailable: {result.error}")
    if result.error:
        return Verdict(0.0, f"could not check answer {_preview(pred)}: {result.error}")
    if result.value == GOLD_UNPARSEABLE:
        return Verdict(None, f"reference answer {_preview(gold)} could not be parsed")
    if result.value in _CANNOT_VERIFY:
        return Verdict(0.0, f"{_CANNOT_VERIFY[result.value]} (answer {_preview(pred)} {where})")
    if result.value in (EQUAL, DIFFERENT):
        return _compared(result.value == EQUAL, pred, gold, where)
    return Verdict(0.0, f"answer {_preview(pred)} {where} could not be parsed")


def normalize_answer(text: str) -> str:
    """Answer text without the wrapping that does not change its meaning.

    Outer `$`/`\\(`/`\\[` delimiters and a final period or comma go; LaTeX thousands separators
    are joined (`10,\\!080` -> `10080`); `\\dfrac`/`\\tfrac` become `\\frac`, `\\boldsymbol`
    `\\mathbf`, `\\text{\\$}` `\\$`, and `~` before a `\\text` unit a space; a Unicode minus
    (U+2212, or a leading en dash) becomes `-`, `°` becomes `^\\circ` and a non-breaking space
    a space.

    >>> normalize_answer(r"$x = 20,\\!080$.")
    'x = 20080'
    """
    text = text.strip().rstrip(" \t\n.,;").strip()
    delimited = _MATH_DELIMITERS.fullmatch(text)
    if delimited:
        text = delimited["content"]
    text = text.strip().lstrip("$").rstrip(" \t\n.$").strip()
    text = _DIGIT_GROUP_SEPARATOR.sub("", text)
    if "~" in text:
        text = _TILDE_BEFORE_TEXT.sub(" ", text)
    if not text.isascii():
        text = text.translate(_UNICODE_FORMS)
        if text.startswith("\u2013"):
            text = "-" + text[1:]
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    return text.replace("\\boldsymbol{", "\\mathbf{").replace("\\text{\\$}", "\\$")


class _Gold(NamedTuple):
    """What a reference answer is, read once per batch: its text and the forms it is compared in."""

    text: str
    parts: int
    letters: list[str] | None
    choice: str | None
    number: Any
    words: str | None


def _gold_of(reference: Any, seen: dict[str | None, _Gold]) -> _Gold:
    key = None if reference is None else str(reference)
    if key not in seen:
        text = _reference_text(reference)
        seen[key] = _Gold(text, _count_parts(text), _letters(text), _choice(text), as_number(text), _as_words(text))
    return seen[key]


def _reference_text(reference: Any) -> str:
    """The reference's answer: read like a completion's boxes or `####` line when it has
    any (a full solution), else all of it. An unclosed last box still holds the answer."""
    if reference is None:
        return ""
    text = str(reference)
    if "\\boxed" in text or "\\fbox" in text:
        # An answer stated after the last box supersedes it, as in a completion.
        boxed = find_answer(text, ("boxed", "answer_is"))
        unclosed = boxed is None or "\\boxed" in boxed.text or "\\fbox" in boxed.text
        text = text.rpartition("\\boxed{")[2] if unclosed else boxed.text
    elif "####" in text:
        hashes = find_answer(text, ("hashes",))
        text = hashes.text if hashes else ""
    return normalize_answer(text)


def _count_parts(gold: str) -> int:
    """How many comma/semicolon-separated parts the reference has outside brackets."""
    return 1 if as_number(gold) is not None else count_parts(gold)


def _compared(same: bool, pred: str, gold: str, where: str) -> Verdict:
    relation = "equals" if same else "differs from"
    return Verdict(1.0 if same else 0.0, f"answer {_preview(pred)} {where} {relation} reference {_preview(gold)}")


def _letters(text: str) -> list[str] | None:
    """The letters of a list of option letters ("A, D, F", `\\text{A}, \\text{D}`), sorted."""
    if "\\" in text:
        text = _TEXT_LETTERS.sub(r"\1", text)
    if not _LETTER_LIST.fullmatch(text.strip()):
        return None
    return sorted(char for char in text if char.isupper())


def _as_words(text: str) -> str | None:
    """`text` as lower-case words when it is a word answer ("odd", "\\text{No solution}").

    Bare letters count as words only from three letters on: `ab` is a product.
    """
    wrapped = _TEXT_WRAPPER.fullmatch(text)
    content = (wrapped["content"] if wrapped else text).strip()
    if not _WORDS.fullmatch(content) or (not wrapped and len(content) < 3):
        return None
    return " ".join(content.lower().split())


def _choice(text: str) -> str | None:
    """The option letter when `text` is a multiple-choice answer ("(C)", "\\text{C}", "(C) 12")."""
    match = _CHOICE.fullmatch(text) if text[:1] in _CHOICE_START else None
    if match is None:
        return None
    rest = match["rest"].strip()
    if rest and not ((match["paren"] or match["close"]) and not _OPTION_LABEL.search(rest)):
        return None  # "C 12", "A, C", "(A) (B) (C)": not one labelled option
    return match["paren"] or match["bare"]


def _option_text(text: str) -> str:
    """An answer without its option label when the reference is not a letter: "(C) 12" -> "12"."""
    match = _CHOICE.fullmatch(text) if text[:1] in _CHOICE_START else None
    rest = match["rest"].strip() if match else ""
    if rest and (match["paren"] or match["close"]) and not _OPTION_LABEL.search(rest):
        return rest
    return text


def _preview(text: str, limit: int = 60) -> str:
    """Quote an answer for a reason string, cut short so reasons stay one line."""
    return repr(text if len(text) <= limit else text[:limit] + "...")
