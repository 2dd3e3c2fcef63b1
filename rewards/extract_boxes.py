"""`\\boxed{...}` answers: where a text's boxes are, and which of the last ones state its answer.

No regular expression can find a box: boxes nest (`\\boxed{\\boxed{3}}`), hold braces
(`\\boxed{\\frac{1}{2}}`) and come cut off at max_tokens, so they are found here in one pass
over the braces, linear in the text length. Whether a statement after the last box
supersedes it is the `boxed` rule's call (`rewards/extract.py`); this module only reads the
boxes. `count_parts` also tells the `math` reward how many parts a reference has.
"""

from __future__ import annotations

import re

_BOXED_TOKEN = re.compile(r"\\(?:boxed|fbox)\s*\{|\{|\}")
# What may stand between two boxes that state one answer: "\boxed{2}, \boxed{3} and \boxed{5}".
_JOINERS = r"(?:\s|\$|,|;|\\[,;:! ]|\\q?quad|\\\(|\\\)|\\\[|\\\]|\band\b|\bor\b|\\text\{\s*(?:and|or)\s*\})"
# ...or a unit word then "and"/",": "\boxed{1} papers and \boxed{2} bins".
_BOX_JOINER = re.compile(rf"{_JOINERS}*(?:[A-Za-z]+\s*(?:,|\band\b|\bor\b){_JOINERS}*)?")
_WHOLE_SET = re.compile(r"(?:\\left)?\\\{(?P<elements>.*)(?:\\right)?\\\}", re.DOTALL)


def find_boxes(text: str) -> list[tuple[int, int, int, int]]:
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


def last_boxes_text(text: str, boxes: list[tuple[int, int, int, int]], parts: int = 1) -> str:
    """The last of `boxes` (from `find_boxes`), with the boxes joined to it by "," / "and" /
    spacing, or the last boxes that hold `parts` values (`\\boxed{2, 3}` holds two), as
    their contents joined with ", "."""
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
