"""Finding the program in a completion: which fenced block is the solution.

A completion often holds several blocks: the solution, a usage example, the output it
prints. The rule (`extract_program`) prefers the block that defines the entry point, then a
python-tagged block that is not a usage example.
"""

from __future__ import annotations

import ast
import re
import textwrap

# A fenced block and its language tag; an unclosed fence at the end (a completion cut at
# max_tokens) still counts.
_FENCE = re.compile(r"```[ \t]*(?P<lang>[\w+-]*)[^\n]*\n(?P<code>.*?)(?:```|\Z)", re.DOTALL)
_PYTHON_TAGS = {"python", "py", "python3"}
_READS_INPUT = re.compile(r"\binput\s*\(|\bstdin\b|\bopen\s*\(\s*0\b|\bfileinput\b")


def extract_program(text: str, entry_point: str = "") -> str:
    """The program in `text`: one of its fenced blocks, dedented, else all of `text`.

    With an `entry_point`, the last block that defines it, tagged python/py/python3 if one
    does, else untagged. Otherwise (or if none does) the blocks looked at are the tagged
    ones, else the untagged ones (an untagged block after a python one is output, not
    code); of those, the last one that parses and is not a usage example (a block that
    defines nothing and reads no input, such as `print(f(3))`, asserts or shown output);
    else the last one that does not parse (a solution cut at max_tokens); else the last.

    >>> extract_program("Here:\\n```python\\ndef f():\\n    pass\\n```\\nso\\n```py\\nprint(f())\\n```")
    'def f():\\n    pass\\n'
    >>> extract_program("print(3)")
    'print(3)'
    """
    blocks = [(m["lang"].lower(), textwrap.dedent(m["code"])) for m in _FENCE.finditer(text)]
    tagged = [code for lang, code in blocks if lang in _PYTHON_TAGS]
    untagged = [code for lang, code in blocks if not lang]
    if entry_point:
        defines = re.compile(rf"\b(?:def|class)\s+{re.escape(entry_point)}\b").search
        defining = [code for code in tagged if defines(code)] or [code for code in untagged if defines(code)]
        if defining:
            return max(reversed(defining), key=_solution_rank)
    chosen = tagged or untagged
    return max(reversed(chosen), key=_solution_rank) if chosen else text


def _solution_rank(code: str) -> int:
    """2 for code that parses and is not a usage example, 1 for code that does not parse, 0
    for a usage example (defines no function or class and reads no input)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return 1
    defines = any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) for node in ast.walk(tree))
    return 2 if defines or _READS_INPUT.search(code) else 0
