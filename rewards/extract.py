"""Find the final answer in a model's completion.

Models state answers in a few conventional ways; we look for them in order of how
deliberate they are: `\\boxed{...}` (MATH), `#### X` (GSM8K), "The answer is X", and
finally the last number anywhere in the text. Every scan is linear in the text length,
so a 100k-character degenerate completion costs milliseconds, not a hang.
"""

from __future__ import annotations

import re

_BOXED_TOKEN = re.compile(r"\\boxed\s*\{|\{|\}")
_HASHES = re.compile(r"####[ \t]*([^\n]*)")
# Only the phrase is matched here; the answer is the rest of that line, cut afterwards.
# Matching the phrase alone lets "the answer is 3, so the answer is 4" find the second one.
_ANSWER_IS = re.compile(r"\bthe\s+(?:final\s+)?answer\s+is\b", re.IGNORECASE)
_SENTENCE_END = re.compile(r"\.(?:\s|$)")
# A minus sign counts only when it is not a binary minus ("5-3" ends in 3, not -3).
# Thousands separators must come in groups of three so "1,2,3" is a list, not 123.
_NUMBER = re.compile(r"(?:(?<![\w)\]}])-)?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")


def extract_answer(text: str) -> str | None:
    """Return the final answer stated in `text`, or `None` when there is none.

    Preference: the last `\\boxed{...}` (nested braces kept whole), else the last
    `#### X`, else the last "The answer is X" (case-insensitive), else the last number
    (thousands commas removed). Empty candidates fall through to the next rule.

    >>> extract_answer(r"so $x = \\boxed{\\frac{1}{2}}$")
    '\\\\frac{1}{2}'
    >>> extract_answer("She pays 1,234 dollars in total.")
    '1234'
    >>> extract_answer("no digits here") is None
    True
    """
    if not text:
        return None
    for rule in (_last_boxed, _last_hashes, _last_answer_is, _last_number):
        answer = rule(text)
        if answer:
            return answer
    return None


def _last_boxed(text: str) -> str | None:
    """Content of the `\\boxed{...}` that closes last, found in one pass over the braces."""
    start = text.find("\\boxed")
    if start < 0:
        return None
    # Each open brace pushes (content start, box start) for a boxed group or None for a
    # plain brace, so closing a brace tells us at once whether a boxed group just ended.
    open_groups: list[tuple[int, int] | None] = []
    # (content start, content end, box start, index of the box's closing brace)
    last: tuple[int, int, int, int] | None = None
    for token in _BOXED_TOKEN.finditer(text, start):
        if token.group() == "{":
            open_groups.append(None)
        elif token.group() != "}":
            open_groups.append((token.end(), token.start()))
        elif open_groups:  # stray closing braces outside any group are ignored
            group = open_groups.pop()
            if group is None:
                continue
            content_start, box_start = group
            # \boxed{\boxed{3}} answers 3: a box that only wraps the previous box keeps
            # that box's content (tracked in the same pass so deep nesting stays linear).
            if last is not None and last[2] == content_start and last[3] + 1 == token.start():
                last = (last[0], last[1], box_start, token.start())
            else:
                last = (content_start, token.start(), box_start, token.start())
    if last is None:
        return None
    return text[last[0] : last[1]].strip()


def _last_hashes(text: str) -> str | None:
    """Rest of the line after the last `####` (GSM8K's answer marker)."""
    matches = _HASHES.findall(text)
    return _clean(matches[-1]) if matches else None


def _last_answer_is(text: str) -> str | None:
    """What follows the last "The answer is", up to the end of that sentence or line."""
    last = None
    for last in _ANSWER_IS.finditer(text):
        pass
    if last is None:
        return None
    line_end = text.find("\n", last.end())
    rest = text[last.end() : line_end if line_end >= 0 else len(text)]
    rest = rest.lstrip(" \t:")
    sentence_end = _SENTENCE_END.search(rest)
    if sentence_end:
        rest = rest[: sentence_end.start()]
    return _clean(rest)


def _last_number(text: str) -> str | None:
    """The last number in the text, with thousands commas removed."""
    last = None
    for last in _NUMBER.finditer(text):
        pass
    return last.group().replace(",", "") if last else None


def _clean(answer: str) -> str:
    """Strip the wrapping that models put around an answer: spaces, `$`, a final period."""
    return answer.strip().lstrip("$").rstrip(" \t.$").strip()
