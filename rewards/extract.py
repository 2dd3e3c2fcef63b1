"""Find the final answer in a model's completion, and say which rule found it.

Models state answers in a few conventional ways; we look for them in order of how
deliberate they are (the order is configurable, see `RULES`):

- `boxed`: the last `\\boxed{...}` (MATH); boxes joined only by "," / "and" / "or" /
  spacing (`\\boxed{-2} and \\boxed{1}`) are one answer with several values (boxes are
  read in `rewards/extract_boxes.py`);
- `hashes`: the last `#### X` line (GSM8K) that starts with a value; a markdown heading
  (`#### Step 2: ...`, `#### Final Answer`) is not an answer;
- `answer_is`: "The (final) answer is X" / "Final answer: X" / "Answer: X" at a line start
  (or a heading line "Final Answer" / "**Answer:**" with X on the next line): the last such
  phrase that states a value, else the last one (a word answer: "The answer is odd");
- `latex`: the last math span `$...$`, `$$...$$`, `\\(...\\)`, `\\[...\\]` in the last
  1,500 characters (found with Math-Verify's own span patterns), unless a number follows it;
- `number`: the last number anywhere (a ratio or time `1:2` is one number).

A stated value joined to others by "," / "or" / "and" / "maybe" / "also" (`$-2$ or $2$`,
`$-2$ (and also $2$ works)`) is read with them, joined by ", ", like joined boxes: a hedge
between values answers none of them, and a list answers a list.

Every scan is linear in the text length (or bounded by Math-Verify's patterns), so a
100k-character degenerate completion costs milliseconds, not a hang.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

from math_verify.parser import make_latex_env_pattern

from rewards.extract_boxes import find_boxes, last_boxes_text
from rewards.verdict import final_text

RULES = ("boxed", "hashes", "answer_is", "latex", "number")

_HASHES = re.compile(r"####[ \t]*([^\n]*)")
# What an answer that is a value starts with (markdown emphasis aside): a digit, sign,
# currency, LaTeX, bracket; a name applied or raised (`f(x)`, `sqrt(2)`, `e^2`); or one
# letter standing alone or in a relation (`x = 5`, `C) 12`, `C`). Prose ("Janet makes $18",
# "Step 2: ...") does not.
_VALUE_START = re.compile(
    r"[*_\s]*(?:[-+\u2212\d.$\\(\[{]|[A-Za-z]+(?=[(\[{^_/*+=<>|\d])|[A-Za-z](?=\s*(?:[-=<>)^_+*/,]|$)))"
)
# Whether a stated answer holds a value (a digit or math), not only words ("correct").
_HOLDS_VALUE = re.compile(r"[\d\\$]")
# A remark about a value, not a statement of it: "the answer is 12 is wrong".
_REMARK = re.compile(r"\S+\s+(?:is|was|isn't|wasn't|are|were)\b", re.IGNORECASE)
# A judgement of an answer, not one: "the answer is correct", "... is reasonable", "... is in dollars".
_JUDGEMENT = re.compile(
    r"(?:not\s+|also\s+|indeed\s+)?(?:correct|incorrect|right|wrong|reasonable|plausible|valid|consistent"
    r"|confirmed|verified|as\s+expected|in\s+[a-z]+|the\s+same\b.*)",
    re.IGNORECASE,
)
# Only the phrase is matched here; the answer is the rest of that line, cut afterwards.
# Matching the phrase alone lets "the answer is 3, so the answer is 4" find the second one.
_FINAL_ANSWER_IS = re.compile(r"\b(?:the\s+final\s+answer\s+is\b|final\s+answer\s*(?:is\b|:))[ \t]*:?", re.IGNORECASE)
_ANSWER_IS = re.compile(
    rf"{_FINAL_ANSWER_IS.pattern}|\bthe\s+answer\s+is\b[ \t]*:?"
    # "Answer: C", "**Answer:** 12" opening a line; a heading "#### Final Answer" alone on its line
    r"|^[ \t>#*_]*(?:final[ \t]+)?answer[ \t*_]*(?::|$)",
    re.IGNORECASE | re.MULTILINE,
)
# Where an answer phrase opens a sentence (after a line start, ". ", ": ", and a connective):
# only such a statement after the last box supersedes it, not "... and the answer is 7".
_OPENS_SENTENCE = re.compile(
    r"(?:^|[.!?:;\n])[\s*_#>]*(?:(?:so|thus|therefore|hence|then|wait|actually|now|finally|overall|"
    r"in\s+conclusion)\b[\s,]*)?$",
    re.IGNORECASE,
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
    r"|\d+(?::\d+)+"  # a ratio or a time, "1:2", "3:00"
    r"|\d+(?:\.\d+)?(?:/\d+(?!\d|\.\d))?"
    r"|\.\d+)"
)
# Prose after a leading value that ends the answer's clause: "18 dollars, which is ...",
# "18, and that is ...", "18 because ...". A comma before another value ("20, or possibly 18")
# does not. Each branch starts after a non-space, so a run of spaces is scanned once.
_CLAUSE_BREAK = re.compile(
    r"(?<!\s)\s*[,;:]\s+(?!(?:(?:or|and|maybe|possibly|perhaps|also|either|else)\s+)+[-+$\\\d.(])(?=[A-Za-z]{2})"
    r"|(?<!\s)\s+[-\u2013\u2014]+\s+"
    r"|(?<!\s)\s+(?:because|since|as|which|so|given|when|where|if|for|after|using|thus|hence|therefore)\b",
    re.IGNORECASE,
)
# An aside in parentheses after something ("18 (9 eggs at $2 each)"), unless it hedges ("(or 20)").
_HEDGE_WORD = r"(?:or|and|maybe|possibly|perhaps|also|alternatively|otherwise|else|either)"
_ASIDE = re.compile(rf"(?<=\S)\s+\((?!\s*{_HEDGE_WORD}\b)(?=[^()]*(?:[A-Za-z]{{2}}|=))[^()]*\)", re.IGNORECASE)
# Words right before a value in prose that make it say something else: "not 18", "more
# than 18", "at least 18", "between 17 and 18", "negative 5".
_NOT_THE_VALUE = re.compile(
    r"(?:\b(?:not|no|never|nor|either|between|than|least|most|except|negative|minus|under|over|above"
    r"|below|to)|n't)[\s$*_]*$",
    re.IGNORECASE,
)
# What joins values into one answer with several values: "$-2$ or $2$", "$-2$, or maybe $2$",
# "$-2$ (and also $2$ works)". At least one comma or such word; spacing alone is not enough.
_VALUE_JOINER = re.compile(
    rf"[\s(]*(?:(?:,|;|\b{_HEDGE_WORD}\b|\\text\s*\{{\s*{_HEDGE_WORD}\s*\}})[\s(]*)+", re.IGNORECASE
)
# Math-Verify's patterns for one math span ($...$, \(...\), \[...\], $$...$$, a bare \frac).
_LATEX_SPAN = re.compile(make_latex_env_pattern(), re.DOTALL)
_LATEX_WINDOW = 1_500


@dataclass(frozen=True)
class Extraction:
    """The answer text a rule found; `rule` is one of `RULES`."""

    rule: str
    text: str


def extract_answer(text: str) -> str | None:
    """Return the final answer stated in `text`, or `None` when there is none.

    Only the text after the reasoning counts (`rewards.verdict.final_text`: after the last
    `</think>`). Rules in the default order of `RULES`; empty candidates fall through to the next.

    >>> extract_answer(r"so $x = \\boxed{\\frac{1}{2}}$")
    '\\\\frac{1}{2}'
    >>> extract_answer("She pays 1,234 dollars in total.")
    '1234'
    >>> extract_answer(r"...so we get $\\frac{1}{3}$.")
    '\\\\frac{1}{3}'
    >>> extract_answer("no digits here") is None
    True
    """
    found = find_answer(final_text(text))
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


def _last_boxed(text: str, parts: int = 1) -> str | None:
    """The last box, with the boxes joined to it by "," / "and" / spacing, or the last boxes
    that hold `parts` values (`\\boxed{2, 3}` holds two).

    None when a sentence after the last box states an answer with a value ("Final Answer: 7",
    "Wait, ... So the answer is 18."): that box was an intermediate result or a mistake
    corrected (Math-Verify ranks the statement first too). A mere mention ("\\boxed{5} is my
    final answer, verified in 3 ways", "the answer is correct") keeps the box.
    """
    boxes = [b for b in find_boxes(text) if text[b[0] : b[1]].strip()]
    if not boxes or _holds_value(_last_answer_is(text[boxes[-1][3] :], sentence_start=True)):
        return None
    return last_boxes_text(text, boxes, parts)


def _last_hashes(text: str) -> str | None:
    """What the last `####` line (GSM8K's answer marker) that starts with a value states.

    A markdown heading (`#### Step 2: Compute money (2 dollars each)`, `#### Final Answer`)
    is skipped: the answer is then read by the next rule (a heading "Final Answer" with
    the value on the next line by `answer_is`).
    """
    for content in reversed(_HASHES.findall(text)):
        if _VALUE_START.match(content):
            return _stated(content)
    return None


def _last_answer_is(text: str, sentence_start: bool = False) -> str | None:
    """What the last "The answer is" / "Answer:" phrase that states a value states, up to
    the end of its sentence or line (the next line for a heading alone on its line); when
    none states a value, what the last one states ("The answer is odd"), unless that
    judges an answer ("the answer is correct", "the answer is in dollars").

    "The answer is 18. I double-checked, and the answer is correct." states 18. With
    `sentence_start`, only phrases that open a sentence count.
    """
    phrases = [m for m in _ANSWER_IS.finditer(text)]
    if sentence_start:
        phrases = [m for m in phrases if _OPENS_SENTENCE.search(text, max(m.start() - 40, 0), m.start())]
    last_stated = None
    for index in range(len(phrases) - 1, -1, -1):
        # Each phrase reads at most up to the next one, so the scan stays linear.
        end = phrases[index + 1].start() if index + 1 < len(phrases) else len(text)
        stated = _stated(_statement_line(text, phrases[index].end(), end))
        if _holds_value(stated):
            return stated
        if index == len(phrases) - 1 and not (stated and _JUDGEMENT.fullmatch(stated)):
            last_stated = stated
    return last_stated


def _statement_line(text: str, start: int, end: int) -> str:
    """The rest of the line from `start`; the next non-empty line when it is empty (a heading)."""
    line_end = text.find("\n", start, end)
    line = text[start : line_end if line_end >= 0 else end]
    if line_end < 0 or line.strip(" \t*_#:"):
        return line
    rest = text[line_end:end].lstrip()
    next_end = rest.find("\n")
    return rest[: next_end if next_end >= 0 else len(rest)]


def _holds_value(stated: str | None) -> bool:
    """Whether a stated answer holds a value (a digit or math), not only words or a remark."""
    return bool(stated and _HOLDS_VALUE.search(stated) and not _REMARK.match(stated))


def _stated(rest: str) -> str | None:
    """The answer at the start of `rest`.

    A math span (with the values joined to it: `$-2$ or $2$`); else the sentence, with
    asides in parentheses dropped ("18 (9 eggs at $2 each)"): when it starts with a value,
    up to the end of that clause ("18 dollars, which is ..."); when it holds no value, all
    of it (a word answer); when prose comes first ("Janet makes $18", "#### The answer is
    72"), its last math span or number, with the values joined to it, unless the prose says
    something else than the value ("not 18", "between 17 and 18"): then all of it.
    """
    math = "$" in rest or "\\" in rest or "[" in rest  # else no span can match; skip the regex
    rest = rest.lstrip()
    span = _LATEX_SPAN.match(rest) if math else None
    if span:  # "The answer is $\frac{1}{3}$." (a period inside the span must not cut it)
        if not _span_content(span):
            return None
        window = rest[: span.end() + _LATEX_WINDOW]  # span patterns are slow on degenerate text
        return _value_run(window, _values(window), 0)[1]
    sentence_end = _SENTENCE_END.search(rest)
    if sentence_end:
        rest = rest[: sentence_end.start()]
    rest = _clean(rest)
    rest = _clean(_ASIDE.sub("", rest)) if "(" in rest else rest
    if _VALUE_START.match(rest):
        clause_end = _CLAUSE_BREAK.search(rest)
        return _clean(rest[: clause_end.start()]) if clause_end else rest
    if not _HOLDS_VALUE.search(rest):
        return rest
    window = rest[-_LATEX_WINDOW:]
    values = _values(window)
    if not values:
        return None
    start, answer = _value_run(window, values, len(values) - 1)
    return rest if _NOT_THE_VALUE.search(window, max(start - 40, 0), start) else answer


class _Value(NamedTuple):
    """A value found in text: a math span's content or a number, and where it stands."""

    start: int
    end: int
    text: str
    is_span: bool


def _values(text: str) -> list[_Value]:
    """The math spans and the numbers outside them in `text`, in order."""
    spans = []
    if "$" in text or "\\" in text or "[" in text:  # else no span can match; skip the regex
        spans = [_Value(m.start(), m.end(), _span_content(m) or "", True) for m in _LATEX_SPAN.finditer(text)]
    values = [span for span in spans if span.text]
    covering = iter(spans)
    span = next(covering, None)
    for number in _NUMBER.finditer(text):
        while span is not None and span.end <= number.start():
            span = next(covering, None)
        if span is None or number.end() <= span.start:
            values.append(_Value(number.start(), number.end(), _number_text(number), False))
    return sorted(values)


def _value_run(text: str, values: list[_Value], index: int) -> tuple[int, str]:
    """`values[index]` with the values joined to it by "or" / "and" / "," ..., joined with
    ", ", and where the first of them starts."""
    first = last = index
    while first > 0 and _VALUE_JOINER.fullmatch(text, values[first - 1].end, values[first].start):
        first -= 1
    while last + 1 < len(values) and _VALUE_JOINER.fullmatch(text, values[last].end, values[last + 1].start):
        last += 1
    return values[first].start, ", ".join(value.text for value in values[first : last + 1])


def _last_latex(text: str) -> str | None:
    """The last math span in the text's last `_LATEX_WINDOW` characters, with the values
    joined to it ("$x=2$ or $x=-2$"), unless a number stands after it.

    "4 * $5 = $20" (dollars, not math) ends in the number 20, so the number rule answers.
    The window bounds the cost: Math-Verify's span patterns are quadratic on degenerate
    text such as "\\(" repeated, and this runs in-process, outside the timed worker.
    """
    text = text[-_LATEX_WINDOW:]
    if "$" not in text and "\\" not in text and "[" not in text:
        return None  # nothing Math-Verify's span patterns could match; skip the regex
    values = _values(text)
    if not values or not values[-1].is_span:
        return None
    return _value_run(text, values, len(values) - 1)[1]


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
    return None if last is None else _number_text(last)


def _number_text(number: re.Match) -> str:
    """A number as written, with thousands separators removed and a decimal comma made a point."""
    if number["decimal_comma"]:
        return number.group().replace(",", ".")
    return number.group().replace(",", "").replace(" ", "")


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
