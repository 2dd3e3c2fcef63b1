"""The code the `code` reward runs before a program, as the datasets' graders preload it.

LiveCodeBench's grader runs its `import_string` before every program, functional or stdin
(APPS's runs a smaller header of the same kind): the public names of string, re, datetime,
collections, heapq, bisect, copy, math, random, statistics, itertools, functools, operator,
io, sys, json and typing (the builtins win where they collide: `pow`, `compile`), those
modules themselves, and `sys.setrecursionlimit(50000)`. So `def f(self, nums: List[int])` or
`gcd(a, b)` without an import pass there. Importing all of it costs ~15 ms per execution in
the sandbox (typing and statistics ~5 ms each), so the prelude binds only the names the
program reads and never binds itself: most programs import what they use and pay nothing;
one needing `List` pays for typing. It runs in the program's namespace before the program
(for calls and stdin/stdout tests; not for HumanEval/MBPP code tests, whose graders preload
nothing).

It is its own module because it reads Python, not test data: which names a program uses
without binding them (`_free_names`, from its syntax tree), against what the grader's
imports would bind (`_preloaded`, read from the modules themselves once).
"""

from __future__ import annotations

import ast
import functools
import importlib

# LiveCodeBench's `import_string`: `from M import *` for each, in this order, then `import M`
# for all but builtins and typing (see the module docstring).
_PRELUDE_MODULES = ("string", "re", "datetime", "collections", "heapq", "bisect", "copy", "math", "random",
                    "statistics", "itertools", "functools", "operator", "io", "sys", "json", "builtins", "typing")
_RECURSION_LIMIT = 50000


def grader_prelude(program: str) -> str:
    """Code to run before `program`, in its namespace, as LiveCodeBench's grader does: the
    imports of its `import_string` that bind a name the program reads but never binds, and
    its recursion limit (see the module docstring).

    >>> grader_prelude("class Solution:\\n    def f(self, a: List[int]) -> int:\\n        return gcd(*a)")
    'from typing import List\\nfrom math import gcd\\n__import__("sys").setrecursionlimit(50000)\\n'
    """
    sources = _preloaded()
    imports: dict[str, list[str]] = {}
    for name in sorted(_free_names(program) & sources.keys()):
        module, attribute = sources[name]
        imports.setdefault(module, []).append(attribute)
    lines = [f"from {module} import {', '.join(a for a in names if a)}" for module, names in imports.items()
             if any(names)]
    lines += [f"import {module}" for module, names in imports.items() if None in names]
    return "".join(line + "\n" for line in lines) + f'__import__("sys").setrecursionlimit({_RECURSION_LIMIT})\n'


@functools.cache
def _preloaded() -> dict[str, tuple[str, str | None]]:
    """Each name LiveCodeBench's `import_string` binds to something other than a builtin:
    (module, attribute), or (module, None) for the module itself."""
    bound: dict[str, tuple[str, str | None]] = {}
    for module_name in _PRELUDE_MODULES:
        module = importlib.import_module(module_name)
        names = getattr(module, "__all__", None) or [name for name in vars(module) if not name.startswith("_")]
        bound.update((name, (module_name, name)) for name in names)
    bound.update((name, (name, None)) for name in _PRELUDE_MODULES if name not in ("builtins", "typing"))
    return {name: source for name, source in bound.items() if source[0] != "builtins"}


def _free_names(program: str) -> set[str]:
    """Names `program` reads but binds nowhere (no assignment, definition, parameter or
    import of that name anywhere in it); none when it does not parse."""
    try:
        tree = ast.parse(program)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return set()
    read, bound = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (read if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)) and node.name:
            bound.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            bound.add(node.rest)
    return read - bound
