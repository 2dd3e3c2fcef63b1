"""Joining a completion's program to its prompt: what the `code` reward runs for HumanEval.

HumanEval's prompt is the start of the program (imports, helpers, the stub of the entry
point with its docstring) and a completion may hold only the body, the whole function, or
the function with the prompt's imports missing. `prepend_prompt` says what to do: true
puts the prompt in front always, false never, "auto" (`assemble_program`) as far as the
program needs it to define the entry point.

It is its own module because it reads Python, not test data or results: whether a program
compiles and defines the entry point (`_defines`), the prompt's imports (`_imports_of`),
and how a body that lost its indentation is put back under the stub (`_indent`).
"""

from __future__ import annotations

import ast
import textwrap


def assemble_program(program: str, prompt: str, entry_point: str, prepend_prompt: bool | str) -> str:
    """The program to run: `program` with `prompt` in front where `prepend_prompt` says so.

    With "auto": a whole function after a prompt that is that function's stub goes after
    the prompt (its helpers stay), else it gets only the prompt's imports; a body goes after
    the prompt, re-indented if it lost its indentation, if that defines the entry point;
    else the program runs alone.

    >>> assemble_program("    return a + b\\n", "def add(a, b):\\n", "add", "auto")
    'def add(a, b):\\n    return a + b\\n'
    """
    if prepend_prompt is True:
        return prompt + program
    if prepend_prompt is False or not entry_point or not prompt:
        return program
    if _defines(program, entry_point):
        # A whole function after the prompt's stub replaces it; the prompt's helpers
        # (HumanEval/10's is_palindrome, /32's poly) stay, which `check` may call too.
        if _defines(prompt, entry_point) and _defines(prompt + "\n" + program, entry_point):
            return prompt + "\n" + program
        return _imports_of(prompt) + program  # only the prompt's imports
    candidates = [prompt + program]
    if program[:1] not in (" ", "\t"):  # the body lost its indentation: its first line, or all
        candidates += [prompt + _indent(program), prompt + textwrap.indent(program, "    ")]
    for candidate in candidates:
        if _defines(candidate, entry_point):
            return candidate
    return program


def _defines(program: str, name: str) -> bool:
    """Whether `program` compiles and defines `name` at its top level (compiling, not only
    parsing, refuses a body pasted at the top level: 'return' outside function)."""
    try:
        tree = ast.parse(program)
        compile(tree, "program.py", "exec", dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name
               for node in tree.body)


def _imports_of(prompt: str) -> str:
    """The top-level import lines of a prompt that is Python (HumanEval's), else ""."""
    try:
        tree = ast.parse(prompt)
    except (SyntaxError, ValueError):
        return ""
    imports = [ast.get_source_segment(prompt, node) for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    return "".join(line + "\n" for line in imports if line)


def _indent(body: str) -> str:
    """A function body whose first line lost its indentation (the prompt ended with it)."""
    lines = body.splitlines(keepends=True)
    return "    " + lines[0] + "".join(lines[1:]) if lines else body
