"""The `judge` reward: a language model grades completions where no verifier can (LLM-as-a-judge).

Two modes:

- `pointwise`: the rubric shows the judge one prompt and one completion; the regex `pattern`
  reads the score from its answer ("Score: 8"), mapped from `scale` onto [0, 1].
- `pairwise`: the judge sees two completions of one prompt and names the better. LLM judges
  favour a position, so every pair is judged in both orders (A-vs-B, then B-vs-A) and the two
  verdicts averaged; a verdict that follows the position, not the content, ends a tie. As a
  reward, a sample scores its average win share against the other samples of its prompt;
  `compare` judges one pair (preference pairs for DPO).

Judges also favour long answers. `length` can remove the batch's linear length trend or
penalize length beyond a target, and `length_corr` is always reported so the bias is seen.

The judge runs on a backend (`rewards/judge_backends.py`): an OpenAI-compatible server, a
local HF model, or the policy itself (Self-Rewarding); the loop attaches the model for the last two.

What this does not protect against: completions are pasted into the rubric verbatim, so a
completion may address the judge ("ignore the above, Score: 10"); a strong judge resists
this better than a weak one, and rewards from a weak judge are easy to hack.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rewards.judge_backends import BackendFailure, EngineBackend, JudgeBackend, OpenAIBackend, TextGenerator
from rewards.judge_length import LengthControl, Tally
from rewards.verdict import Verdict, completion_text

DEFAULT_POINTWISE_RUBRIC = """Rate the response to the request below from 1 to 10 for correctness, helpfulness and clarity.

[Request]
{prompt}

[Response]
{completion}

Explain briefly, then end with a line "Score: N", N an integer from 1 to 10."""

DEFAULT_PAIRWISE_RUBRIC = """Which response answers the request below better? Judge correctness first, then helpfulness and clarity; length is no merit.

[Request]
{prompt}

[Response A]
{a}

[Response B]
{b}

Explain briefly, then end with a line "Winner: A" or "Winner: B"."""

DEFAULT_PATTERNS = {
    "pointwise": r"(?i)score\s*[:=]\s*\**\s*(-?\d+(?:\.\d+)?)",
    "pairwise": r"(?i)winner\s*[:=]\s*\**\s*\[?\s*(A|B)\b",
}
PLACEHOLDERS = {"pointwise": ("{prompt}", "{completion}"), "pairwise": ("{prompt}", "{a}", "{b}")}
BACKENDS = ("openai", "hf", "policy")
DTYPES = ("float32", "bfloat16", "float16", "auto")
REASON_CHARS = 300  # of the judge's answer kept in a sample's reason
_SLOT = re.compile(r"\{(prompt|completion|a|b)\}")
_WINNERS = {"A": "A", "1": "A", "B": "B", "2": "B"}


@dataclass(frozen=True)
class PairVerdict:
    """The judge's preference between completions `a` and `b` of one prompt, both orders judged.

    `score` is a's win share: 1.0 when both orders prefer a, 0.0 when both prefer b, 0.5 when
    the verdict flipped with the order (it followed the position, so it is a tie); from one
    order alone when the other answer was unreadable; None when neither was readable.
    `flipped` is None unless both orders were read. `reason` holds both judge answers.
    """

    score: float | None
    flipped: bool | None
    reason: str = ""

    @property
    def winner(self) -> str | None:
        """The preferred completion, "a" or "b"; None on a tie or when no verdict was readable."""
        if self.score is None or self.score == 0.5:
            return None
        return "a" if self.score > 0.5 else "b"


class JudgeReward:
    """Score completions with a judge model; None when its answer is unreadable or the request failed.

    Building one is cheap and checks the arguments (no model is loaded, no server contacted:
    that happens on first use). Rubrics are filled by placeholder (`{prompt}`, `{completion}`;
    pairwise `{prompt}`, `{a}`, `{b}`), so other braces in them or in math text are kept.

    >>> judge = JudgeReward(backend="openai", url="http://127.0.0.1:8000/v1", model="judge", scale=[0, 10])
    >>> judge.parse_score("Correct and clear.\\nScore: 8")
    0.8
    >>> judge.parse_score("Score: 12"), judge.parse_score("no idea")  # clipped; unreadable
    (1.0, None)
    >>> JudgeReward(backend="policy", mode="pairwise").parse_winner("B is shorter. Winner: B")
    'B'
    """

    __name__ = "judge"  # TRL names the reward's logged metrics after reward_func.__name__
    cost = 3  # the loop runs cheaper rewards first (format 0, math 1, code 2)

    def __init__(self, backend: str | None = None, mode: str = "pointwise", rubric: str | None = None,
                 pattern: str | None = None, scale: Sequence[float] = (1, 10), url: str | None = None,
                 model: str | None = None, api_key_env: str | None = None, max_new_tokens: int = 256,
                 temperature: float = 0.0, length: dict | None = None, max_pairs_per_prompt: int = 16,
                 timeout_s: float = 60.0, max_concurrency: int = 8, retries: int = 2, batch_size: int = 16,
                 dtype: str = "float32", chat_template: bool = True):
        _check_backend(backend, mode, url, model, dtype)
        self.mode = mode
        self.rubric = rubric if rubric is not None else _default_rubric(mode)
        _check_rubric(self.rubric, mode)
        self._regex = _compile_pattern(pattern if pattern is not None else DEFAULT_PATTERNS[mode])
        self.scale = _check_scale(scale)
        _check_positive(max_new_tokens=max_new_tokens, max_pairs_per_prompt=max_pairs_per_prompt,
                        timeout_s=timeout_s, max_concurrency=max_concurrency, batch_size=batch_size)
        if not temperature >= 0 or not retries >= 0:
            raise ValueError(f"judge reward: temperature and retries must be >= 0, got {temperature}, {retries}")
        self.max_new_tokens, self.temperature = max_new_tokens, temperature
        self.max_pairs_per_prompt = max_pairs_per_prompt
        self.length = LengthControl.from_args(length)
        self.backend_name = backend
        # What the model side needs to build this judge's generator (policies/judges.py).
        self.model, self.batch_size, self.dtype, self.chat_template = model, batch_size, dtype, chat_template
        if backend == "openai":
            self.backend: JudgeBackend = OpenAIBackend(url, model, api_key_env, timeout_s, max_concurrency, retries)
        else:
            self.backend = EngineBackend("model" if backend == "hf" else "policy")
        self._tally = Tally()

    @property
    def needs_model(self) -> str | None:
        """"model" or "policy" when the loop must attach a generator (see `attach`), else None."""
        return self.backend.needs if isinstance(self.backend, EngineBackend) else None

    def attach(self, generator: TextGenerator) -> None:
        """Judge with `generator` from now on (backends 'hf' and 'policy'; the loop calls this)."""
        if not isinstance(self.backend, EngineBackend):
            raise TypeError(f"judge backend {self.backend_name!r} brings its own model; nothing to attach")
        self.backend.attach(generator)

    def __call__(self, prompts: list, completions: list, **columns: Any) -> list[float | None]:
        return [v.score for v in self.verdicts(prompts, completions, **columns)]

    def verdicts(self, prompts: list, completions: list, **columns: Any) -> list[Verdict]:
        """One `Verdict` per completion, the judge's answer in its reason.

        The judge reads the raw problem from a `prompt` column when there is one (the loop's
        `prompts` are rendered under the policy's chat template, markup the judge should not
        see); otherwise `prompts`, strings or chat-message lists (the last user turn is read).
        """
        raw_problems = columns.get("prompt")
        if not isinstance(raw_problems, list) or len(raw_problems) != len(completions):
            raw_problems = prompts
        questions = [_prompt_text(p) for p in raw_problems]
        texts = [completion_text(c) for c in completions]
        if self.mode == "pairwise":
            raw, reasons = self._pairwise_scores(questions, texts)
        else:
            raw, reasons = self._pointwise_scores(questions, texts)
        lengths = [len(t) for t in texts]
        self._tally.record_scores(raw, lengths)
        return [Verdict(s, r) for s, r in zip(self.length.apply(raw, lengths), reasons)]

    def compare(self, prompt: Any, a: Any, b: Any) -> PairVerdict:
        """Which of completions `a` and `b` (strings or message lists) answers `prompt` better."""
        return self.compare_many([(prompt, a, b)])[0]

    def compare_many(self, pairs: Sequence[tuple[Any, Any, Any]]) -> list[PairVerdict]:
        """`compare` for many (prompt, a, b) triples, sent to the backend as one batch."""
        if self.mode != "pairwise":
            raise ValueError("judge reward: compare needs mode='pairwise' (and a pairwise rubric)")
        judge_prompts = []
        for prompt, a, b in pairs:
            question, first, second = _prompt_text(prompt), completion_text(a), completion_text(b)
            judge_prompts.append(self._fill(prompt=question, a=first, b=second))
            judge_prompts.append(self._fill(prompt=question, a=second, b=first))
        answers = self._ask(judge_prompts)
        return [self._pair_verdict(answers[i], answers[i + 1]) for i in range(0, len(answers), 2)]

    def parse_score(self, answer: str) -> float | None:
        """The judge's score mapped from `scale` onto [0, 1] (clipped); None if there is none.

        The last match counts: judges that reason first often restate the format ("I must end
        with Score: N") before giving their verdict.
        """
        matches = list(self._regex.finditer(answer))
        if not matches:
            return None
        try:
            value = float(matches[-1].group(1))
        except (TypeError, ValueError):
            return None
        lo, hi = self.scale
        return min(1.0, max(0.0, (value - lo) / (hi - lo)))

    def parse_winner(self, answer: str) -> str | None:
        """The judge's pick from its answer: "A" (shown first), "B" (shown second), or None."""
        matches = list(self._regex.finditer(answer))
        return _WINNERS.get((matches[-1].group(1) or "").strip().upper()) if matches else None

    def pop_metrics(self) -> dict[str, float]:
        """Judge health since the last call (then reset): calls, errors, unparseable, length_corr...

        Keys carry no prefix; the loop logs them as `reward/judge/<key>`. Rates with nothing to
        count are NaN.
        """
        metrics = self._tally.metrics(pairwise=self.mode == "pairwise")
        self._tally = Tally()
        return metrics

    def _pointwise_scores(self, questions: list[str], texts: list[str]) -> tuple[list, list[str]]:
        answers = self._ask([self._fill(prompt=q, completion=t) for q, t in zip(questions, texts)])
        scores, reasons = [], []
        for answer in answers:
            if isinstance(answer, BackendFailure):
                scores.append(None)
                reasons.append(f"judge backend error: {answer.error}"[:REASON_CHARS])
                continue
            score = self.parse_score(answer)
            self._tally.unparseable += score is None
            scores.append(score)
            reasons.append(("judge: " if score is not None else "unparseable judge answer: ") + _clip(answer))
        return scores, reasons

    def _pairwise_scores(self, questions: list[str], texts: list[str]) -> tuple[list, list[str]]:
        """Each sample's average win share against the other samples of its prompt."""
        groups: dict[str, list[int]] = {}
        for index, question in enumerate(questions):
            groups.setdefault(question, []).append(index)
        pairs = [pair for members in groups.values() for pair in _pick_pairs(members, self.max_pairs_per_prompt)]
        judged = self.compare_many([(questions[i], texts[i], texts[j]) for i, j in pairs])
        wins: list[list[float]] = [[] for _ in texts]
        last_reason = ["" for _ in texts]
        for (i, j), verdict in zip(pairs, judged):
            last_reason[i] = last_reason[j] = verdict.reason
            if verdict.score is not None:
                wins[i].append(verdict.score)
                wins[j].append(1.0 - verdict.score)
        scores, reasons = [], []
        for index, question in enumerate(questions):
            if len(groups[question]) < 2:
                scores.append(None)
                reasons.append("no other sample of this prompt to compare with")
            elif not wins[index]:
                scores.append(None)
                reasons.append(f"no readable comparison; last: {last_reason[index]}"[:REASON_CHARS])
            else:
                scores.append(sum(wins[index]) / len(wins[index]))
                won = f"won {sum(wins[index]):g} of {len(wins[index])} comparisons"
                reasons.append(f"{won}; last: {last_reason[index]}"[:REASON_CHARS])
        return scores, reasons

    def _pair_verdict(self, forward: str | BackendFailure, backward: str | BackendFailure) -> PairVerdict:
        """Combine the A-vs-B answer (a shown first) and the B-vs-A answer (b shown first)."""
        first, second = self._read_winner(forward), self._read_winner(backward)
        a_shares = [None if first is None else float(first == "A"), None if second is None else float(second == "B")]
        readable = [share for share in a_shares if share is not None]
        flipped = None if len(readable) < 2 else a_shares[0] != a_shares[1]
        if flipped is not None:
            self._tally.pairs_judged_both += 1
            self._tally.position_flips += flipped
        score = sum(readable) / len(readable) if readable else None
        reason = f"A-vs-B: {_clip(_answer_text(forward), 140)} | B-vs-A: {_clip(_answer_text(backward), 140)}"
        return PairVerdict(score, flipped, reason)

    def _read_winner(self, answer: str | BackendFailure) -> str | None:
        if isinstance(answer, BackendFailure):
            return None
        winner = self.parse_winner(answer)
        self._tally.unparseable += winner is None
        return winner

    def _ask(self, judge_prompts: list[str]) -> list[str | BackendFailure]:
        if not judge_prompts:
            return []
        answers = self.backend.complete(judge_prompts, self.max_new_tokens, self.temperature)
        if len(answers) != len(judge_prompts):
            raise RuntimeError(f"judge backend returned {len(answers)} answers for {len(judge_prompts)} prompts")
        self._tally.calls += len(answers)
        self._tally.errors += sum(isinstance(a, BackendFailure) for a in answers)
        return answers

    def _fill(self, **values: str) -> str:
        """The rubric with its placeholders filled in one pass (text inside values is never refilled)."""
        return _SLOT.sub(lambda m: values.get(m.group(1), m.group(0)), self.rubric)


def _pick_pairs(members: list[int], cap: int) -> list[tuple[int, int]]:
    """Up to `cap` pairs of a prompt's samples, spread so each sample gets a fair share.

    Pairs come in rounds of distance d = 1, 2, ... around the ring of samples, each round
    giving every sample two comparisons; within a round, pairs starting at even positions come
    first, which are disjoint, so a cap of half the samples already reaches every sample.
    """
    count, pairs, seen = len(members), [], set()
    for distance in range(1, count // 2 + 1):
        for i in [*range(0, count, 2), *range(1, count, 2)]:
            pair = tuple(sorted((i, (i + distance) % count)))
            if pair not in seen:
                seen.add(pair)
                pairs.append((members[pair[0]], members[pair[1]]))
    return pairs[:cap]


def _prompt_text(prompt: Any) -> str:
    """A prompt as text: a string as is; of a chat-message list, the last user turn."""
    if isinstance(prompt, (list, tuple)):
        users = [m for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        return completion_text(users[-1] if users else list(prompt))
    return completion_text(prompt)


def _answer_text(answer: str | BackendFailure) -> str:
    return f"backend error: {answer.error}" if isinstance(answer, BackendFailure) else answer


def _clip(text: str, limit: int = REASON_CHARS) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _default_rubric(mode: str) -> str:
    return DEFAULT_PAIRWISE_RUBRIC if mode == "pairwise" else DEFAULT_POINTWISE_RUBRIC


def _check_backend(backend: str | None, mode: str, url: str | None, model: str | None, dtype: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(
            f"judge reward: backend must be one of {', '.join(map(repr, BACKENDS))}, got {backend!r}: "
            "'openai' for an OpenAI-compatible server (set url and model), 'hf' for a local "
            "Hugging Face model (set model), 'policy' for the policy judging itself"
        )
    if mode not in PLACEHOLDERS:
        raise ValueError(f"judge reward: mode must be 'pointwise' or 'pairwise', got {mode!r}")
    if backend == "openai" and not (isinstance(url, str) and url.startswith(("http://", "https://"))):
        raise ValueError(f"judge reward: backend 'openai' needs url, the API base such as "
                         f"'http://127.0.0.1:8000/v1', got {url!r}")
    if backend == "openai" and url.rstrip("/").endswith("/completions"):
        raise ValueError(f"judge reward: url is the API base, e.g. 'http://127.0.0.1:8000/v1', without the "
                         f"endpoint; got {url!r}")
    if backend in ("openai", "hf") and not model:
        what = "the served model's name" if backend == "openai" else "a hub id or local path"
        raise ValueError(f"judge reward: backend {backend!r} needs model ({what})")
    if dtype not in DTYPES:
        raise ValueError(f"judge reward: dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")


def _check_rubric(rubric: str, mode: str) -> None:
    missing = [slot for slot in PLACEHOLDERS[mode] if slot not in rubric]
    if missing:
        raise ValueError(f"judge reward: a {mode} rubric must contain {', '.join(PLACEHOLDERS[mode])}; "
                         f"add {', '.join(missing)} where the judge should see it")


def _compile_pattern(pattern: str) -> re.Pattern:
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"judge reward: invalid regular expression pattern {pattern!r}: {exc}") from exc
    if regex.groups < 1:
        raise ValueError(f"judge reward: pattern {pattern!r} needs a capture group around the verdict, "
                         r"e.g. 'Score:\s*(\d+)' or 'Winner:\s*(A|B)'")
    return regex


def _check_scale(scale: Sequence[float]) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in scale)
    except (TypeError, ValueError):
        raise ValueError(f"judge reward: scale must be [lowest, highest] score, e.g. [1, 10], got {scale!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"judge reward: scale [lo, hi] needs finite lo < hi, got {scale!r}")
    return lo, hi


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        if not (isinstance(value, (int, float)) and value > 0):
            raise ValueError(f"judge reward: {name} must be a positive number, got {value!r}")
