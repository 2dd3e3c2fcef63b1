"""The `code` reward: does the program in the completion pass the sample's tests?

The program is the last ```python (or ```py, or bare ```) block of the completion, else the
whole text. Tests come from a dataset column (`tests` by default), per sample either

- assert-style test code: a list of strings such as `"assert add(1, 2) == 3"`, or one
  string (one test). All of a sample's tests run in ONE process, after the program, each
  in its own try/except; or
- stdin/stdout pairs: a list of `{"input": str, "output": str}` (or an APPS-style
  `{"inputs": [...], "outputs": [...]}`), one process per pair, compared after stripping
  trailing whitespace from each line and trailing blank lines;

or either of these JSON-encoded in a string (so Parquet and JSONL columns work).
Score = fraction of tests passed, or 1.0/0.0 with `mode: all`. Programs run in the
sandbox of `rewards/execution/` (read its docstrings for what that does not contain);
`workers` samples run at once.

Test results travel on the harness's own copy of stdout, each line prefixed with a random
nonce, while the program's own prints are sent to stderr: printing cannot fake a pass.
(A program can still game its tests from the inside, e.g. with an object equal to
everything; that is a property of assert tests, not of the sandbox.)
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from rewards.execution import E2BExecutor, ExecutionResult, Limits, LocalExecutor
from rewards.verdict import Verdict, completion_text

# The last fenced block tagged python/py/python3 or untagged; an unclosed fence at the end
# (a completion cut at max_tokens) still counts.
_FENCE = re.compile(r"```[ \t]*(?P<lang>[\w+-]*)[^\n]*\n(?P<code>.*?)(?:```|\Z)", re.DOTALL)
_PYTHON_TAGS = {"", "python", "py", "python3"}

# Runs in the sandbox as the program, with a call of `_selfloop_run_tests` between the two parts.
_HARNESS_START = '''\
import json as _json, os as _os, sys as _sys


def _selfloop_run_tests(program, tests, nonce):
    results = _os.fdopen(_os.dup(1), "w")
    _os.dup2(2, 1)  # the program's prints go to stderr: they can neither crowd out nor forge results

    def report(**fields):
        results.write(nonce + _json.dumps(fields) + "\\n")
        results.flush()

    def describe(exc):
        try:
            message = str(exc)
        except BaseException:
            message = ""
        return (type(exc).__name__ + (": " + message if message else ""))[:300]

    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    try:
        exec(compile(program, "program.py", "exec"), namespace)
    except BaseException as exc:
        report(program_error=describe(exc))
        return
    for index, test in enumerate(tests):
        try:
            exec(compile(test, "test_%d" % (index + 1), "exec"), namespace)
        except BaseException as exc:
            report(test=index, ok=False, error=describe(exc))
        else:
            report(test=index, ok=True)

'''
_HARNESS_END = '''\
for _stream in (_sys.stdout, _sys.stderr):
    try:
        _stream.flush()
    except BaseException:
        pass
_os._exit(0)  # skip the program's atexit handlers and threads: the verdict is in
'''


@dataclass(frozen=True)
class SampleTests:
    """One sample's tests: `kind` is "asserts" (cases are code strings) or "io" (cases
    are (stdin, expected stdout) pairs)."""

    kind: str
    cases: tuple


class CodeReward:
    """Score = share of the sample's tests the completion's program passes (see module doc).

    `None` when the tests column is missing or unreadable (cannot judge); 0.0 with a reason
    for no code, a failing or hanging program, or a sandbox failure. `backend` is "local"
    (bubblewrap, see `LocalExecutor`; `use_bwrap` as there) or "e2b" (needs E2B_API_KEY).
    `executor` replaces the backend, for tests and custom sandboxes.

    >>> code = CodeReward(timeout_s=10)
    >>> code(prompts=["Write add."], completions=["```python\\ndef add(a, b):\\n    return a + b\\n```"],
    ...      tests=[["assert add(1, 2) == 3", "assert add(2, 2) == 5"]])
    [0.5]
    """

    __name__ = "code"  # TRL names the reward's logged metrics after reward_func.__name__
    cost = 2  # relative cost: the loop runs cheap rewards (format 0, math 1) first

    def __init__(
        self,
        backend: str = "local",
        mode: str = "fraction",
        timeout_s: float = 5.0,
        memory_mb: int = 1024,
        workers: int = 2,
        tests_column: str = "tests",
        use_bwrap: bool | None = None,
        max_processes: int = 32,
        e2b_template: str | None = None,
        executor: Any = None,
    ):
        if backend not in ("local", "e2b"):
            raise ValueError(
                f"code reward: backend must be 'local' (bubblewrap sandbox) or 'e2b' (cloud), got {backend!r}"
            )
        if mode not in ("fraction", "all"):
            raise ValueError(f"code reward: mode must be 'fraction' or 'all', got {mode!r}")
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"code reward: workers must be a positive integer (parallel executions), got {workers!r}")
        if not isinstance(tests_column, str) or not tests_column:
            raise ValueError(f"code reward: tests_column must name a dataset column, got {tests_column!r}")
        if use_bwrap not in (None, True, False):
            raise ValueError(f"code reward: use_bwrap must be true, false or null (auto), got {use_bwrap!r}")
        if use_bwrap and backend == "local" and executor is None and shutil.which("bwrap") is None:
            raise ValueError(
                "code reward: use_bwrap is true but bwrap is not installed: install bubblewrap "
                "(apt-get install bubblewrap), or set use_bwrap: null to fall back to rlimits only"
            )
        try:
            limits = Limits(timeout_s=timeout_s, memory_mb=memory_mb, max_processes=max_processes)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"code reward: {exc}") from None
        self.mode, self.workers, self.tests_column = mode, workers, tests_column
        self.executor = executor or _build_executor(backend, limits, use_bwrap, e2b_template)
        self._metrics = {"executions": 0.0, "timeouts": 0.0, "sandbox_errors": 0.0, "wall_s": 0.0}
        self._metrics_lock = threading.Lock()

    def __call__(self, prompts: list, completions: list, **columns: Any) -> list[float | None]:
        return [v.score for v in self.verdicts(prompts, completions, **columns)]

    def verdicts(self, prompts: list, completions: list, **columns: Any) -> list[Verdict]:
        """One `Verdict` per completion, judged `workers` at a time; other columns are ignored."""
        if self.tests_column not in columns or columns[self.tests_column] is None:
            reason = f"no {self.tests_column!r} column in the dataset (columns: {sorted(columns) or 'none'})"
            return [Verdict(None, reason) for _ in completions]
        tests = columns[self.tests_column]
        if len(tests) != len(completions):
            raise ValueError(f"got {len(completions)} completions but {len(tests)} {self.tests_column!r} values")
        start = time.monotonic()
        with ThreadPoolExecutor(max_workers=max(1, min(self.workers, len(completions)))) as pool:
            verdicts = list(pool.map(self._judge_safely, completions, tests))
        self._count(wall_s=time.monotonic() - start)
        return verdicts

    def judge(self, completion: Any, tests: Any) -> Verdict:
        """Score one completion (string or message list) against one sample's tests."""
        parsed = parse_tests(tests)
        if isinstance(parsed, str):
            return Verdict(None, parsed)
        program = extract_program(completion_text(completion))
        if not program.strip():
            return Verdict(0.0, "no code found")
        if parsed.kind == "asserts":
            return self._judge_asserts(program, parsed.cases)
        return self._judge_io(program, parsed.cases)

    def pop_metrics(self) -> dict[str, float]:
        """Counts since the last call (then reset), for the loop to log as `reward/code/*`.

        `sandbox_bwrap` is 1.0 when the local backend runs in bubblewrap and 0.0 when it
        fell back to rlimits only (absent before the first run and for e2b).
        """
        with self._metrics_lock:
            metrics, self._metrics = self._metrics, dict.fromkeys(self._metrics, 0.0)
        wall_s = metrics.pop("wall_s")
        metrics["exec_per_s"] = metrics["executions"] / wall_s if wall_s > 0 else 0.0
        isolation = getattr(self.executor, "isolation", None)
        if isolation in ("bwrap", "rlimits"):
            metrics["sandbox_bwrap"] = 1.0 if isolation == "bwrap" else 0.0
        return metrics

    def close(self) -> None:
        """Release the executor's resources (remote VMs); the reward stays usable."""
        self.executor.close()

    def __enter__(self) -> CodeReward:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def _judge_safely(self, completion: Any, tests: Any) -> Verdict:
        try:
            return self.judge(completion, tests)
        except Exception as exc:  # one sample's failure must not end the round
            return Verdict(0.0, f"code reward failed on this sample: {type(exc).__name__}: {exc}"[:300])

    def _execute(self, program: str, stdin: str = "") -> ExecutionResult:
        result = self.executor.run(program, stdin)
        self._count(
            executions=1.0, timeouts=float(result.timed_out), sandbox_errors=float(result.error.startswith("sandbox:"))
        )
        return result

    def _judge_asserts(self, program: str, cases: tuple) -> Verdict:
        nonce = secrets.token_hex(16)
        call = f"_selfloop_run_tests({program!r}, {list(cases)!r}, {nonce!r})\n"
        harness = _HARNESS_START + call + _HARNESS_END
        result = self._execute(harness)
        if result.error.startswith("sandbox:"):
            return Verdict(0.0, result.error)
        reports = _reports(result.stdout, nonce)
        total = len(cases)
        outcomes = {
            r["test"]: (r.get("ok") is True, str(r.get("error", "")))
            for r in reports if r.get("test") in range(total)
        }
        failed_program = [r["program_error"] for r in reports if "program_error" in r]
        if failed_program and not outcomes:
            return Verdict(0.0, f"program failed: {failed_program[0]}")
        passed = sum(ok for ok, _ in outcomes.values())
        if passed == total:
            return Verdict(1.0, f"all {total} tests passed")
        first = min(i for i in range(total) if not outcomes.get(i, (False,))[0])
        if first in outcomes:
            why = f"test {first + 1}/{total} failed: {outcomes[first][1]}"
        elif result.timed_out:
            why = f"{result.error} before test {first + 1}/{total} finished"
        else:
            why = f"test {first + 1}/{total} did not finish: {_process_failure(result)}"
        return self._score(passed, total, why, result.timed_out)

    def _judge_io(self, program: str, cases: tuple) -> Verdict:
        passed, first_failure, timed_out = 0, "", False
        for index, (stdin, expected) in enumerate(cases):
            if timed_out:
                break  # a program that hung once costs one timeout, not one per remaining case
            result = self._execute(program, stdin)
            if result.error.startswith("sandbox:"):
                return Verdict(0.0, result.error)
            timed_out = result.timed_out
            if result.ok and _lines(result.stdout) == _lines(expected):
                passed += 1
                continue
            if not first_failure:
                first_failure = f"test {index + 1}/{len(cases)} failed: {_io_failure(result, expected)}"
            if self.mode == "all":
                break
        if passed == len(cases):
            return Verdict(1.0, f"all {len(cases)} tests passed")
        return self._score(passed, len(cases), first_failure, timed_out)

    def _score(self, passed: int, total: int, why: str, timed_out: bool) -> Verdict:
        score = 0.0 if self.mode == "all" else passed / total
        return Verdict(score, f"{why} ({passed}/{total} passed)", timed_out=timed_out)

    def _count(self, **amounts: float) -> None:
        with self._metrics_lock:
            for name, amount in amounts.items():
                self._metrics[name] += amount


def extract_program(text: str) -> str:
    """The last python/py/bare fenced block of `text`, else all of `text`.

    >>> extract_program("Here:\\n```python\\nprint(1)\\n```\\nor better\\n```py\\nprint(2)\\n```")
    'print(2)\\n'
    >>> extract_program("print(3)")
    'print(3)'
    """
    blocks = [m["code"] for m in _FENCE.finditer(text) if m["lang"].lower() in _PYTHON_TAGS]
    return blocks[-1] if blocks else text


def parse_tests(value: Any) -> SampleTests | str:
    """A sample's tests column as `SampleTests`, or a reason (str) why it cannot be read.

    >>> parse_tests('["assert f(1) == 2"]')
    SampleTests(kind='asserts', cases=('assert f(1) == 2',))
    >>> parse_tests([{"input": "1 2", "output": "3"}])
    SampleTests(kind='io', cases=(('1 2', '3'),))
    """
    if value is None:
        return "no tests for this sample"
    if isinstance(value, str):
        try:
            decoded = json.loads(value)
        except ValueError:
            decoded = None
        if not isinstance(decoded, (list, dict)):
            return SampleTests("asserts", (value,)) if value.strip() else "empty tests"
        value = decoded
    if isinstance(value, dict):
        if isinstance(value.get("inputs"), list) and isinstance(value.get("outputs"), list):
            if len(value["inputs"]) != len(value["outputs"]):
                return "tests: 'inputs' and 'outputs' differ in length"
            value = [{"input": i, "output": o} for i, o in zip(value["inputs"], value["outputs"])]
        else:
            value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        return f"unreadable tests: expected a list of test strings or input/output pairs, got {_preview(value)}"
    if all(isinstance(case, str) for case in value):
        return SampleTests("asserts", tuple(value))
    if all(isinstance(case, dict) and "input" in case and "output" in case for case in value):
        return SampleTests("io", tuple((_text(case["input"]), _text(case["output"])) for case in value))
    return f"unreadable tests: mixed or unknown test formats in {_preview(value)}"


def _build_executor(backend: str, limits: Limits, use_bwrap: bool | None, e2b_template: str | None) -> Any:
    if backend == "local":
        return LocalExecutor(limits, use_bwrap=use_bwrap)
    try:
        return E2BExecutor(limits, template=e2b_template)
    except ValueError as exc:
        raise ValueError(f"code reward: {exc}") from None


def _reports(stdout: str, nonce: str) -> list[dict]:
    """The harness's result lines; lines without the nonce, or garbled by processes the
    program forked (they share the result stream), are skipped."""
    reports = []
    for line in stdout.splitlines():
        if line.startswith(nonce):
            try:
                report = json.loads(line[len(nonce):])
            except ValueError:
                continue
            if isinstance(report, dict):
                reports.append(report)
    return reports


def _lines(text: str) -> list[str]:
    """Output as compared: each line without trailing whitespace, no trailing blank lines."""
    lines = [line.rstrip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _io_failure(result: ExecutionResult, expected: str) -> str:
    if result.timed_out or result.error or result.exit_code != 0:
        return _process_failure(result)
    return f"wrong output: expected {_preview(expected)}, got {_preview(result.stdout)}"


def _process_failure(result: ExecutionResult) -> str:
    """Why a process ended badly: the limit it hit, or its exit code and last stderr line."""
    if result.error:
        return result.error
    last = result.stderr.strip().splitlines()[-1:] or [""]
    return f"exit code {result.exit_code}" + (f": {last[0][:200]}" if last[0] else "")


def _text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "\n".join(str(line) for line in value)
    return "" if value is None else str(value)


def _preview(value: Any, limit: int = 40) -> str:
    text = value if isinstance(value, str) else repr(value)
    return repr(text if len(text) <= limit else text[:limit] + "...")
