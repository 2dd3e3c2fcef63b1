"""Plain numbers in math answers, read in-process: the `math` reward's fast path.

Most answers in grade-school and competition sets are plain numbers ("1,234", "\\$18",
"x = 5", "1.5 million dollars", "30^\\circ C", "12 feet squared"). Reading and comparing
them here with exact decimal arithmetic decides thousands of samples per second and never
starts a symbolic worker (`rewards/sandbox.py`), which costs a process round trip and up
to `timeout_s` per check. What is and is not a unit word beside a number is decided here
once, and it also screens answers bound for the worker: arithmetic left undone
(`unevaluated`) and a value qualified in words (`qualified`) score 0 without a check,
since Math-Verify would drop the words as a unit; true unit words are dropped here
(`without_units`) before the worker parses the rest.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation

# Words that, after a number, change its value or make it part of a phrase, so they are not
# units ("5 squared", "2 dozen", "2 thirds", "5 or more", "5 more than x", "5 is wrong",
# "3 pi"). "5 more apples" is still 5 apples; after a unit, "squared"/"cubed" is part of it
# ("12 feet squared"). A last "times" counts occurrences ("20 times"), so `_PLAIN_NUMBER`
# allows it at the end; "5 times 3" still fails there on the 3, and "5 times ten" on "times".
# "plus" ("20 plus": at least 20), "minus", "over" stay value-changing even at the end.
_NOT_A_UNIT = (
    r"(?i:pi|sqrt|exp|log|ln|root|inverse|squared|cubed|factorial|dozens?|halfs?|halves|thirds?|quarters?"
    r"|(?:four|fif|six|seven|eigh|nin|ten|hundred|thousand|million|billion)ths?"
    r"|hundreds?|thousands?|millions?|billions?|trillions?"
    r"|or|and|is|not|than|most|least|plus|minus|times|over|divided|to)\b"
)
# In `\\text{...}` beside a value: a number (not an exponent), an aside in parentheses, or such a word.
_NOT_UNIT_TEXT = re.compile(rf"(?<![\^_\d])\d|[()]|\b{_NOT_A_UNIT}")
# A unit word, optionally squared or cubed: "cm", "feet squared", "units squared".
_UNIT_WORD = rf"\s+(?!{_NOT_A_UNIT})[A-Za-z]{{2,}}\.?(?:\s+(?i:squared|cubed)\b)?"
_SQUARED_UNIT = re.compile(r"(?<=[a-z.])\s+(?:squared|cubed)\b")
# Scale words multiply: "1.5 million dollars" is 1500000 (GSM8K-style answers).
_SCALES = {"thousand": 3, "million": 6, "billion": 9, "trillion": 12}
# A plain decimal, optionally after `x =`, with thousands separators, currency sign, a scale
# word, degrees and unit words: "1,234", "100 000", "-0.5", "\\$18", "18 dollars", "x = 5",
# "5 thousand", "30^\\circ C". Separators must group by three so "1,2" (a pair) is not read
# as twelve.
_PLAIN_NUMBER = re.compile(
    r"(?:(?P<variable>[A-Za-z])\s*=\s*)?(?:\\?\$)?"
    r"(?P<number>[-+]?(?:(?:\d{1,3}(?:,\d{3})+|\d{1,3}(?: \d{3})+|\d+)(?:\.\d*)?|\.\d+))"
    r"(?:\s+(?P<scale>(?i:thousand|million|billion|trillion))s?\b)?"
    r"(?:\s*\^\s*\{?\s*\\circ\s*\}?(?:\s*[CFK](?![A-Za-z]))?)?"
    rf"(?:{_UNIT_WORD})*(?:\s+(?i:times)\.?)?"
)
# Unit words after a value that is not a plain number: "1/2 cup", "2\\sqrt{3} cm".
_TRAILING_UNITS = re.compile(rf"(?<=[\d}}])(?:{_UNIT_WORD})+$")
# Text around a number, read as its words: "5\\text{ cm}", "\\text{5 dollars}", "5 \\text{ thousand}".
_TEXT_BLOCK = re.compile(r"\\(?:text(?:bf|rm|normal)?|mbox|mathrm)\s*\{(?P<content>[^{}\\]*)\}")
# Arithmetic on numbers alone ("47+8-15", "48 + 48/2", "3 \\times 4") is the working, not
# the value. A number, fraction, root, power or factorial is one value; so is scientific
# notation ("2 \\times 10^{3}").
_NUMERIC_ONLY = re.compile(
    r"(?:[\d\s.,+\-*/\u00d7\u00f7\u00b7()\[\]{}^!%]|\\(?:frac|sqrt|times|cdot|div|left|right|[%,;! ]))+"
)
_BINARY_OPERATOR = re.compile(r"(?<=[\d)}\]!%.])\s*(?:[+\-*\u00d7\u00f7\u00b7]|\\times|\\cdot|\\div)")
_SCIENTIFIC = re.compile(
    r"[-+]?\d+(?:\.\d+)?\s*(?:\\times|\\cdot|\u00d7|\*)\s*10\s*\^\s*(?:\{\s*[-+]?\d+\s*\}|[-+]?\d+)"
)


def as_number(text: str) -> tuple[str | None, Decimal] | None:
    """`text` as (variable or None, exact decimal) when it is a plain number (see `_PLAIN_NUMBER`)."""
    if "\\" in text:
        text = _TEXT_BLOCK.sub(r" \g<content>", text).strip()
    match = _PLAIN_NUMBER.fullmatch(text)
    if match is None:
        return None
    try:
        value = Decimal(match["number"].replace(",", "").replace(" ", ""))
    except InvalidOperation:
        return None
    if match["scale"]:
        value = value.scaleb(_SCALES[match["scale"].lower()])
    return match["variable"], value


def same_number(pred: Decimal, gold: Decimal, precision: int) -> bool:
    """Whether two plain numbers are equal as the symbolic path compares them.

    Integers are compared exactly (`18446744073709551617` is not `2^{64}`); when either is
    written with decimals (a float there), both are rounded to `precision` places first, as
    math-verify's `float_rounding` does, so `0.30000000000000004` is 0.3 but `18.01` is not 18.
    """
    if pred == gold:
        return True
    if pred.as_tuple().exponent >= 0 and gold.as_tuple().exponent >= 0:
        return False
    # Exact rounding, whatever the length: enough digits for the larger number and the places.
    digits = max(pred.adjusted(), gold.adjusted(), 0) + precision + 2
    context = Context(prec=digits, rounding=ROUND_HALF_EVEN)
    places = Decimal(1).scaleb(-precision)
    return pred.quantize(places, context=context) == gold.quantize(places, context=context)


def unevaluated(answer: str) -> bool:
    """Whether the answer's value (its last side) is arithmetic on numbers left undone."""
    value = answer.rpartition("=")[2].strip()
    return bool(
        _NUMERIC_ONLY.fullmatch(value) and _BINARY_OPERATOR.search(value) and not _SCIENTIFIC.fullmatch(value)
    )


def qualified(answer: str) -> bool:
    """Whether text beside the value says more than a unit: "3 \\text{ (or 4)}",
    "5 \\text{ thousand}". Math-Verify drops trailing text as a unit, which would leave 3 or 5.
    A lone "or"/"and" joins values (`x = 2 \\text{ or } x = 3`); an answer that is all text
    (`\\text{5}`) is not beside anything."""
    blocks = list(_TEXT_BLOCK.finditer(answer))
    if len(blocks) == 1 and blocks[0].span() == (0, len(answer)):
        return False
    for block in blocks:
        content = _SQUARED_UNIT.sub("", block["content"].strip(" ,;").lower())
        if content not in ("or", "and") and _NOT_UNIT_TEXT.search(content):
            return True
    return False


def without_units(answer: str) -> str:
    """The answer without unit words after a value that is not a plain number: "1/2 cup",
    "2\\sqrt{3} cm" (see `_TRAILING_UNITS`)."""
    return _TRAILING_UNITS.sub("", answer) or answer
