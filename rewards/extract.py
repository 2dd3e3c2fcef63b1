"""Find the final answer in a model's completion, and say which rule found it.

Models state answers in a few conventional ways; we look for them in order of how
deliberate they are (the order is configurable, see `RULES`):

- `boxed`: the last `\\boxed{...}` (MATH); boxes joined only by "," / "and" / "or" /
  spacing (`\\boxed{-2} and \\boxed{1}`) are one answer with several values;
- `hashes`: `#### X` (GSM8K);
- `answer_is`: "The (final) answer is X" / "Final answer: X" / "Answer: X" at a line start;
- `latex`: the last math span `$...$`, `$$...$$`, `\\(...\\)`, `\\[...\\]` in the last
  1,500 characters (found with Math-Verify's own span patterns), unless a number follows it;
- `number`: the last number anywhere.

Every scan is linear in the text length (or bounded by Math-Verify's patterns), so a
100k-character degenerate completion costs milliseconds, not a hang.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from math_verify.parser import make_latex_env_pattern

RULES = ("boxed", "hashes", "answer_is", "latex", "number")

_BOXED_TOKEN = re.compile(r"\\(?:boxed|fbox)\s*\{|\{|\}")
_HASHES = re.compile(r"####[ \t]*([^\n]*)")
# Only the phrase is matched here; the answer is the rest of that line, cut afterwards.
# Matching the phrase alone lets "the answer is 3, so the answer is 4" find the second one.
_FINAL_ANSWER_IS = re.compile(r"\b(?:the\s+final\s+answer\s+is\b|final\s+answer\s*(?:is\b|:))[ \t]*:?", re.IGNORECASE)
_ANSWER_IS = re.compile(
    rf"{_FINAL_ANSWER_IS.pattern}|\bthe\s+answer\s+is\b[ \t]*:?"
    r"|^[ \t>#*_]*answer[ \t*_]*:",  # "Answer: C", "**Answer:** 12" opening a line
    re.IGNORECASE | re.MULTILINE,
)
_SENTENCE_END = re.compile(r"\.(?:\s|$)")
# A minus sign (ASCII or U+2212) counts only when it is not a binary minus ("5-3" ends in 3, not -3).
# Thousands separators (comma or space) must come in groups of three so "1,2,3" is a
# list, not 123; a comma before one, two or four-plus digits ("1000,99", "2,74") is a
# decimal comma, as Math-Verify reads it. Digits glued to letters ("AZYUK2A", "x2") are
# names, not numbers; a simple fraction "2/3" is one number.
_NUMBER = re.compile(
    r"(?:(?<![\w)\]}])[-\u2212])?(?<![A-Za-z_\d.])(?:"
    r"(?P<grouped>\d{1,3}(?:,\d{3})+|\d{1,3}(?: \d{3})+(?!\d))(?:\.\d+)?"
    r"|(?<!\d,)(?P<decimal_comma>\d+,(?:\d{1,2}|\d{4,})(?![\d,]))"
    r"|\d+(?:\.\d+)?(?:/\d+(?!\d|\.\d))?"
    r"|\.\d+)"
)
# Words of prose, once LaTeX commands are dropped; three of them make a sentence.
_PROSE_WORD = re.compile(r"(?<!\\)\b[A-Za-z]{2,}\b")
# Math-Verify's patterns for one math span ($...$, \(...\), \[...\], $$...$$, a bare \frac).
_LATEX_SPAN = re.compile(make_latex_env_pattern(), re.DOTALL)
# What may stand between two boxes that state one answer: "\boxed{2}, \boxed{3} and \boxed{5}".
_JOINERS = r"(?:\s|\$|,|;|\\[,;:! ]|\\q?quad|\\\(|\\\)|\\\[|\\\]|\band\b|\bor\b|\\text\{\s*(?:and|or)\s*\})"
# ...or a unit word then "and"/",": "\boxed{1} papers and \boxed{2} bins".
_BOX_JOINER = re.compile(rf"{_JOINERS}*(?:[A-Za-z]+\s*(?:,|\band\b|\bor\b){_JOINERS}*)?")
# An answer phrase followed by a long sentence is prose ("Final Answer: The number of
# points is 19"); then the last math span or number of that sentence is the answer.
_SHORT_ANSWER_CHARS = 60
_WHOLE_SET = re.compile(r"(?:\\left)?\\\{(?P<elements>.*)(?:\\right)?\\\}", re.DOTALL)
_LATEX_WINDOW = 1_500


@dataclass(frozen=True)
class Extraction:
    """The answer text a rule found; `rule` is one of `RULES`."""

    rule: str
    text: str


def extract_answer(text: str) -> str | None:
    """Return the final answer stated in `text`, or `None` when there is none.

    Rules in the default order of `RULES`; empty candidates fall through to the next.

    >>> extract_answer(r"so $x = \\boxed{\\frac{1}{2}}$")
    '\\\\frac{1}{2}'
    >>> extract_answer("She pays 1,234 dollars in total.")
    '1234'
    >>> extract_answer(r"...so we get $\\frac{1}{3}$.")
    '\\\\frac{1}{3}'
    >>> extract_answer("no digits here") is None
    True
    """
    found = find_answer(text)
    return found.text if found else None


def find_answer(text: str, rules: tuple[str, ...] | list[str] = RULES, parts: int = 1) -> Extraction | None:
    """The first rule in `rules` that finds an answer in `text`, with what it found.

    `parts` > 1 asks for a multi-part answer: the last `parts` boxes, joined with ", ",
    when the text has that many (a question with parts (a), (b)...).
    """
    if not text:
        return None
    for rule in rules:
        answer = _RULE_FUNCTIONS[rule](text, parts) if rule == "boxed" else _RULE_FUNCTIONS[rule](text)
        if answer:
            return Extraction(rule, answer)
    return None


def check_rules(rules: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """`rules` as a tuple, or ValueError naming the unknown ones."""
    unknown = [rule for rule in rules if rule not in RULES]
    if unknown or not rules:
        raise ValueError(f"unknown extraction rules {unknown or rules}; choose from {list(RULES)}")
    return tuple(rules)


def _boxes(text: str) -> list[tuple[int, int, int, int]]:
    """Every outermost box as (content start, content end, box start, box end), in order.

    One pass over the braces. `\\boxed{\\boxed{3}}` is one box around 3; a box inside a
    box's other content (`\\boxed{a \\boxed{b}}`) is part of the outer one.
    """
    start = text.find("\\boxed")
    if start < 0:
        start = text.find("\\fbox")
    if start < 0:
        return []
    # Each open brace pushes (content start, box start) for a box or None for a plain
    # brace, so closing a brace tells us at once whether a box just ended.
    open_groups: list[tuple[int, int] | None] = []
    boxes: list[tuple[int, int, int, int]] = []
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
            # Boxes closed inside this one are part of it; a box that only wraps the
            # previous box keeps that box's content.
            inner = []
            while boxes and boxes[-1][2] >= content_start:  # closed later, so at the end
                inner.append(boxes.pop())
            if len(inner) == 1 and inner[0][2] == content_start and inner[0][3] == token.start():
                boxes.append((inner[0][0], inner[0][1], box_start, token.end()))
            else:
                boxes.append((content_start, token.start(), box_start, token.end()))
    return boxes


def _last_boxed(text: str, parts: int = 1) -> str | None:
    """The last box, with the boxes joined to it by "," / "and" / spacing, or the last boxes
    that hold `parts` values (`\\boxed{2, 3}` holds two).

    None when a final answer is stated after the last box ("Final Answer: 7"): that box
    was an intermediate result (Math-Verify ranks the statement first too). A mere mention
    ("\\boxed{5} is my final answer, verified in 3 ways") keeps the box.
    """
    boxes = [b for b in _boxes(text) if text[b[0] : b[1]].strip()]
    if not boxes or _last_answer_is(text[boxes[-1][3] :], _FINAL_ANSWER_IS):
        return None
    chosen = [boxes[-1]]
    for previous in reversed(boxes[:-1]):
        if not _BOX_JOINER.fullmatch(text, previous[3], chosen[0][2]):
            break
        chosen.insert(0, previous)
    if len(chosen) < parts <= len(boxes) and sum(_count_values(text[b[0] : b[1]]) for b in chosen) < parts:
        chosen = boxes[-parts:]
    return ", ".join(text[b[0] : b[1]].strip() for b in chosen)


def count_parts(text: str) -> int:
    """How many comma/semicolon-separated parts `text` has outside brackets."""
    depth, parts = 0, 1
    for char in text:
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth = max(depth - 1, 0)
        elif char in ",;" and depth == 0:
            parts += 1
    return parts


def _count_values(box: str) -> int:
    """How many values a box states: its parts, or a whole set's elements (`\\{2, 3\\}`)."""
    box = box.strip()
    whole_set = _WHOLE_SET.fullmatch(box)
    return count_parts(whole_set["elements"] if whole_set else box)


def _last_hashes(text: str) -> str | None:
    """What the line after the last `####` (GSM8K's answer marker) states."""
    matches = _HASHES.findall(text)
    return _stated(matches[-1]) if matches else None


def _last_answer_is(text: str, phrase: re.Pattern = _ANSWER_IS) -> str | None:
    """What follows the last "The answer is" (or `phrase`), up to the end of that sentence or line."""
    last = None
    for last in phrase.finditer(text):
        pass
    if last is None:
        return None
    line_end = text.find("\n", last.end())
    return _stated(text[last.end() : line_end if line_end >= 0 else len(text)])


def _stated(rest: str) -> str | None:
    """The answer at the start of `rest`: a math span, else the sentence; in a long or
    wordy sentence ("#### The answer is 72") its last math span or number."""
    math = "$" in rest or "\\" in rest or "[" in rest  # else no span can match; skip the regex
    span = _LATEX_SPAN.match(rest.lstrip()) if math else None
    if span:  # "The answer is $\frac{1}{3}$." (a period inside the span must not cut it)
        return _span_content(span)
    sentence_end = _SENTENCE_END.search(rest)
    if sentence_end:
        rest = rest[: sentence_end.start()]
    rest = _clean(rest)
    if len(rest) > _SHORT_ANSWER_CHARS or len(_PROSE_WORD.findall(_LATEX_SPAN.sub("", rest) if math else rest)) >= 3:
        return _last_latex(rest) or _last_number(rest)
    return rest


def _last_latex(text: str) -> str | None:
    """The last math span in the text's last `_LATEX_WINDOW` characters, unless a number
    stands after it.

    "4 * $5 = $20" (dollars, not math) ends in the number 20, so the number rule answers.
    The window bounds the cost: Math-Verify's span patterns are quadratic on degenerate
    text such as "\\(" repeated, and this runs in-process, outside the timed worker.
    """
    text = text[-_LATEX_WINDOW:]
    if "$" not in text and "\\" not in text and "[" not in text:
        return None  # nothing Math-Verify's span patterns could match; skip the regex
    last = None
    for last in _LATEX_SPAN.finditer(text):
        pass
    if last is None or _NUMBER.search(text, last.end()):
        return None
    return _span_content(last)


def _span_content(span: re.Match) -> str | None:
    """What a math span says, without its delimiters (a trailing percent sign kept)."""
    groups = span.groupdict()
    content = _clean(next(value for name, value in groups.items() if name.startswith("latex") and value))
    return content + "\\%" if content and groups.get("percent") else content or None


def _last_number(text: str) -> str | None:
    """The last number in the text, with thousands separators removed."""
    last = None
    for last in _NUMBER.finditer(text):
        pass
    if last is None:
        return None
    if last["decimal_comma"]:
        return last.group().replace(",", ".")
    return last.group().replace(",", "").replace(" ", "")



def _clean(answer: str) -> str:
    """Strip the wrapping that models put around an answer: spaces, markdown bold, `$`, a final period."""
    return answer.strip(" \t\n*").lstrip("$").rstrip(" \t.$*").strip()


_RULE_FUNCTIONS = {
    "boxed": _last_boxed,
    "hashes": _last_hashes,
    "answer_is": _last_answer_is,
    "latex": _last_latex,
    "number": _last_number,
}
