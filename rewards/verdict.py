"""The result every verifier returns, and the one place completions are turned into text.

A reward's float is thin: when a loop keeps nothing, users need to know *why* each sample
scored what it did. So verifiers return a `Verdict` (score plus reason), and the reward's
`__call__` is a thin adapter that keeps only the scores for TRL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Verdict:
    """One sample's judgement.

    `score` is the reward; `None` means the verifier cannot judge this sample (e.g. the
    reference answer is missing) and trainers should skip it rather than count it wrong.
    `reason` is a short human-readable explanation; `timed_out` marks samples whose check
    was killed by the wall-clock limit.
    """

    score: float | None
    reason: str = ""
    timed_out: bool = False


def completion_text(completion: Any) -> str:
    """Return the text of a completion given as a string or as a chat-message list.

    TRL passes conversational completions as `[{"role": "assistant", "content": ...}]`;
    the answer lives in the last message, so that is the one we read.

    >>> completion_text([{"role": "assistant", "content": "The answer is 4."}])
    'The answer is 4.'
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        content = completion.get("content") or ""
        if isinstance(content, list):
            # Multimodal messages carry content as parts: [{"type": "text", "text": ...}].
            return "".join(part.get("text", "") for part in content if isinstance(part, dict))
        return str(content)
    if isinstance(completion, (list, tuple)):
        if not completion:
            return ""
        return completion_text(completion[-1])
    return "" if completion is None else str(completion)


def final_text(text: str) -> str:
    """The part of a completion that states its answer: what follows the reasoning.

    Reasoning models (DeepSeek-R1, Qwen3) think inside `<think>...</think>` and answer after
    it; what they try while thinking ("maybe \\boxed{12}?") is not their answer. So this is the
    text after the last `</think>` (the opening tag may be in the prompt, as in R1's chat
    template); `""` when a `<think>` is opened and never closed (cut off while thinking: no
    answer yet); the whole text when there is no think tag.

    >>> final_text("<think>maybe 12?</think> The answer is 18.")
    ' The answer is 18.'
    >>> final_text("<think>so the answer is 18")
    ''
    """
    _, closed, answer = text.rpartition("</think>")
    if not closed:
        return "" if "<think>" in text else text
    return "" if "<think>" in answer else answer
