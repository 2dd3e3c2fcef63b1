"""The `code` reward: does the program in the completion pass the sample's tests?

The program is a fenced block of the completion (see `rewards/code_extract.py`), else the whole
text. With an entry point (HumanEval) the prompt may be prepended (`prepend_prompt`: true
always, false never, "auto" where the program needs it: see `rewards/code_assemble.py`).
In harness runs the program's `__name__` is not "__main__" (as in HumanEval's own
harness); stdin/stdout programs run as "__main__".
Tests come from the `tests` column (`tests_column`), in the formats of
`rewards/code_formats.py`: MBPP asserts (+ `test_setup_code`, `test_imports` columns),
HumanEval `check(candidate)` (+ `entry_point`), stdin/stdout pairs (APPS, CodeContests,
LiveCodeBench "stdin"), function calls (LiveCodeBench "functional" with `fn_name` or
`metadata`, APPS `fn_name`). A `time_limit` column replaces `timeout_s` for its problem.
Score = fraction of tests passed, or 1.0/0.0 with `mode: all`.

Time limits are per test, as the graders apply them: each stdin/stdout pair is one process
with the limit; under the harness, the program's own top-level code and then each test (an
assert, `check`, a call) get the limit each, enforced by the harness's timer, and the run as
a whole gets one limit per test plus a second of start-up (at most ten minutes), so a hang
costs one limit, not one per test. Calls and stdin/stdout programs first run the prelude of
LiveCodeBench's grader (`grader_prelude` in `rewards/code_prelude.py`): `List`, `gcd`,
`deque`... without an import work there, and so here.

Code tests and calls run in one sandboxed process per sample under the harness of
`rewards/execution/harness.py`, which keeps the verdict out of the program's reach (read
its docstring); stdin/stdout pairs run one process each and are compared here, as are
the return values of calls (strictly serialized built-in values), so neither depends on
anything the program can patch.

What remains possible (not preventable by a sandbox, a property of the tests):
- code tests compare inside the program's process: a returned object that equals
  everything (`__eq__`), is always truthy, or shadows a builtin the tests call by a
  global of the same name, passes `assert f(x) == y`; so does monkeypatching a library
  module the tests use (`math.isclose`). Calls and stdin/stdout tests are immune.
- a CPython memory-safety bug exploited from pure Python could reach the harness.
- in the rlimits-only fallback (no bwrap) the program runs as this user: it can read
  this process's memory and so the tests. Use bwrap or e2b for untrusted code.
"""

from __future__ import annotations

import ast
import shutil
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rewards.code_assemble import assemble_program
from rewards.code_formats import SampleTests, parse_time_limit, parse_tests, same_output, same_value
from rewards.code_prelude import grader_prelude
from rewards.execution import E2BExecutor, ExecutionResult, Harness, Limits, LocalExecutor, signal_error
from rewards.code_extract import extract_program
from rewards.verdict import Verdict, completion_text, final_text

# Per-sample columns the reward reads besides the tests, as datasets name them.
_SAMPLE_COLUMNS = ("prompt", "entry_point", "test_setup_code", "test_imports", "fn_name", "metadata", "time_limit")
_OUTPUT_CAP = "output over the executor's cap (Limits.max_output_bytes)"
# A harness run: start-up allowance on top of one limit per test, and a ceiling for the whole.
_HARNESS_START_S = 1.0
_HARNESS_MAX_S = 600.0
# How a harness run ends when its per-test timer fires (the default action of SIGALRM).
_TEST_TIMER = signal_error(-signal.SIGALRM)


class CodeReward:
    """Score = share of the sample's tests the completion's program passes (see module doc).

    `None` when the tests are missing or unreadable (cannot judge); 0.0 with a reason
    for no code, a failing or hanging program, or a sandbox failure. `backend` is "local"
    (bubblewrap, see `LocalExecutor`; `use_bwrap` as there) or "e2b" (needs E2B_API_KEY).
    `executor` replaces the backend, for tests and custom sandboxes. `tests_column` may
    name several columns (CodeContests' public and private tests), merged.

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
        tests_column: str | list[str] = "tests",
        prepend_prompt: bool | str = "auto",
        float_tolerance: float = 0.0,
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
        columns = [tests_column] if isinstance(tests_column, str) else tests_column
        if not isinstance(columns, (list, tuple)) or not columns or not all(isinstance(c, str) and c for c in columns):
            raise ValueError(f"code reward: tests_column must name a dataset column (or a list), got {tests_column!r}")
        if prepend_prompt not in (True, False, "auto"):
            raise ValueError(f"code reward: prepend_prompt must be true, false or 'auto', got {prepend_prompt!r}")
        if isinstance(float_tolerance, bool) or not isinstance(float_tolerance, (int, float)) or float_tolerance < 0:
            raise ValueError(f"code reward: float_tolerance must be a number >= 0, got {float_tolerance!r}")
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
        self.mode, self.workers, self.tests_columns = mode, workers, tuple(columns)
        self.prepend_prompt, self.float_tolerance = prepend_prompt, float(float_tolerance)
        self.executor = executor or _build_executor(backend, limits, use_bwrap, e2b_template)
        self._metrics = {"executions": 0.0, "timeouts": 0.0, "sandbox_errors": 0.0, "wall_s": 0.0}
        self._metrics_lock = threading.Lock()

    def __call__(self, prompts: list, completions: list, **columns: Any) -> list[float | None]:
        return [v.score for v in self.verdicts(prompts, completions, **columns)]

    def verdicts(self, prompts: list, completions: list, **columns: Any) -> list[Verdict]:
        """One `Verdict` per completion, judged `workers` at a time. Besides the tests it
        reads the columns `prompt` (else `prompts`), `entry_point`, `test_setup_code`,
        `test_imports`, `fn_name`, `metadata` and `time_limit` where present."""
        present = [name for name in self.tests_columns if columns.get(name) is not None]
        if not present:
            names = " or ".join(repr(name) for name in self.tests_columns)
            reason = f"no {names} column in the dataset (columns: {sorted(columns) or 'none'})"
            return [Verdict(None, reason) for _ in completions]
        if columns.get("prompt") is None:
            columns = {**columns, "prompt": prompts}
        for name in present + [c for c in _SAMPLE_COLUMNS if columns.get(c) is not None]:
            if len(columns[name]) != len(completions):
                raise ValueError(f"got {len(completions)} completions but {len(columns[name])} {name!r} values")
        samples = [
            {name: columns[name][i] for name in _SAMPLE_COLUMNS if columns.get(name) is not None}
            | {"tests": [columns[name][i] for name in present]}
            for i in range(len(completions))
        ]
        start = time.monotonic()
        with ThreadPoolExecutor(max_workers=max(1, min(self.workers, len(completions)))) as pool:
            verdicts = list(pool.map(self._judge_safely, completions, samples))
        self._count(wall_s=time.monotonic() - start)
        return verdicts

    def judge(self, completion: Any, tests: Any, **sample: Any) -> Verdict:
        """Score one completion (string or message list) against one sample's tests (one
        column's value, or a list of several columns' values from `verdicts`); `sample`
        holds its other columns (see `verdicts`)."""
        parsed = _parse_all(tests if sample.pop("_merged", False) else [tests], sample)
        if isinstance(parsed, str):
            return Verdict(None, parsed)
        time_limit = parse_time_limit(sample.get("time_limit"))
        if isinstance(time_limit, str):
            return Verdict(None, time_limit)
        entry_point = _entry_point(parsed, sample)
        answer = final_text(completion_text(completion))  # a reasoning model's code after </think>
        if not answer.strip():
            return Verdict(0.0, "no code after the reasoning" if completion_text(completion).strip() else "no code found")
        program = extract_program(answer, entry_point)
        if not program.strip():
            return Verdict(0.0, "no code found")
        program = assemble_program(program, completion_text(sample.get("prompt") or ""), entry_point,
                                   self.prepend_prompt)
        prelude = grader_prelude(program) if parsed.kind != "code" else ""
        if parsed.kind == "io":
            return self._judge_io(program, parsed.cases, time_limit, prelude)
        return self._judge_harness(program, parsed, time_limit, prelude)

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

    def _judge_safely(self, completion: Any, sample: dict) -> Verdict:
        try:
            return self.judge(completion, **sample, _merged=True)
        except Exception as exc:  # one sample's failure must not end the round
            return Verdict(0.0, f"code reward failed on this sample: {type(exc).__name__}: {exc}"[:300])

    def _execute(self, program: str, stdin: str = "", harness: Harness | None = None,
                 timeout_s: float | None = None, prelude: str = "") -> ExecutionResult:
        result = self.executor.run(program, stdin, harness=harness, timeout_s=timeout_s, prelude=prelude)
        self._count(executions=1.0, timeouts=float(result.timed_out or result.error == _TEST_TIMER),
                    sandbox_errors=float(result.error.startswith("sandbox:")))
        return result

    def _judge_harness(self, program: str, tests: SampleTests, time_limit: float | None, prelude: str) -> Verdict:
        """Code tests and calls: one run under the harness; calls' values compared here."""
        if tests.kind == "calls":
            cases = tuple({"call": call.function, "args": list(call.args)} for call in tests.cases)
        else:
            cases = tests.cases
        per_test = time_limit or self.executor.limits.timeout_s
        harness = Harness(tests=cases, setup=tests.setup, definitions=tests.definitions, timeout_s=per_test)
        whole = min(per_test * (len(cases) + 1) + _HARNESS_START_S, max(per_test, _HARNESS_MAX_S))
        result = self._execute(program, harness=harness, timeout_s=whole, prelude=prelude)
        if result.error.startswith("sandbox:"):
            return Verdict(0.0, result.error)
        reports = _reports(result.stdout, harness.nonce, result.truncated)
        total, timed_out = len(cases), result.timed_out or result.error == _TEST_TIMER
        for stage, label in (("program", "program"), ("test setup", "setup")):
            verdict, detail = reports.get(label, ("ok", ""))
            if verdict != "ok":
                return self._score(0, total, f"{stage} failed: {detail}", timed_out)
        outcomes = {}
        for index in range(total):
            verdict, detail = reports.get(str(index), ("", ""))
            if verdict == "value":
                outcomes[index] = self._check_value(detail, tests.cases[index].expected)
            elif verdict:
                outcomes[index] = (verdict == "ok", detail)
        passed = sum(ok for ok, _ in outcomes.values())
        if passed == total:
            return Verdict(1.0, f"all {total} tests passed")
        first = min(i for i in range(total) if not outcomes.get(i, (False,))[0])
        if first in outcomes:
            why = f"test {first + 1}/{total} failed: {outcomes[first][1]}"
        elif result.error == _TEST_TIMER:
            where = f"in test {first + 1}/{total}" if "program" in reports else "in the program, before any test"
            why = f"timeout after {per_test:g}s {where}"
        elif result.timed_out:
            why = f"{result.error} before test {first + 1}/{total} finished"
        elif result.truncated:
            why = f"test {first + 1}/{total} not reported: {_OUTPUT_CAP}"
        else:
            why = f"test {first + 1}/{total} did not finish: {_process_failure(result)}"
        return self._score(passed, total, why, timed_out)

    def _check_value(self, detail: str, expected: tuple) -> tuple[bool, str]:
        if detail == "!too long":
            return False, f"returned a value too long to report: {_OUTPUT_CAP}"
        if detail.startswith("!"):
            return False, f"returned a value that is not built-in data ({detail[1:]})"
        try:
            value = ast.literal_eval(detail)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return False, "returned an unreadable value"
        if any(same_value(value, want, self.float_tolerance) for want in expected):
            return True, ""
        return False, f"wrong value: expected {_preview(_repr(expected[0]))}, got {_preview(detail)}"

    def _judge_io(self, program: str, cases: tuple, time_limit: float | None, prelude: str) -> Verdict:
        passed, first_failure, timed_out = 0, "", False
        for index, (stdin, expected) in enumerate(cases):
            if timed_out:
                break  # a program that hung once costs one timeout, not one per remaining case
            result = self._execute(program, stdin, timeout_s=time_limit, prelude=prelude)
            if result.error.startswith("sandbox:"):
                return Verdict(0.0, result.error)
            timed_out = result.timed_out
            if result.ok and not result.truncated and same_output(result.stdout, expected, self.float_tolerance):
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


def _parse_all(values: list, sample: dict) -> SampleTests | str:
    """The tests of one sample from one or more columns, merged when of one kind."""
    args = {"entry_point": sample.get("entry_point"), "function": sample.get("fn_name") or sample.get("metadata"),
            "setup": [*_as_list(sample.get("test_imports")), *_as_list(sample.get("test_setup_code"))]}
    parsed = [parse_tests(value, **args) for value in values if value is not None]
    readable = [p for p in parsed if not isinstance(p, str)]
    if not readable:
        return parsed[0] if parsed else "no tests for this sample"
    if len({p.kind for p in readable}) > 1:
        return "tests columns hold different kinds of tests; map one"
    first = readable[0]
    return SampleTests(first.kind, sum((p.cases for p in readable), ()), first.setup,
                       sum((p.definitions for p in readable), ()))


def _entry_point(tests: SampleTests, sample: dict) -> str:
    name = sample.get("entry_point")
    if isinstance(name, str) and name.isidentifier():
        return name
    return tests.cases[0].function if tests.kind == "calls" else ""


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _build_executor(backend: str, limits: Limits, use_bwrap: bool | None, e2b_template: str | None) -> Any:
    if backend == "local":
        return LocalExecutor(limits, use_bwrap=use_bwrap)
    try:
        return E2BExecutor(limits, template=e2b_template)
    except ValueError as exc:
        raise ValueError(f"code reward: {exc}") from None


def _reports(stdout: str, nonce: str, truncated: bool = False) -> dict[str, tuple[str, str]]:
    """The harness's result lines by label ("program", "setup", test index): (verdict,
    detail). Lines without the nonce, or garbled by the program, are skipped, and so is a
    last line cut at the output cap (`truncated`); a label's first report counts."""
    reports: dict[str, tuple[str, str]] = {}
    lines = stdout.splitlines()
    for line in lines[:-1] if truncated else lines:
        head, _, rest = line.partition(" ")
        if head != nonce:
            continue
        label, _, rest = rest.partition(" ")
        verdict, _, detail = rest.partition(" ")
        if verdict in ("ok", "fail", "value", "error"):
            reports.setdefault(label, (verdict, detail))
    return reports


def _io_failure(result: ExecutionResult, expected: str) -> str:
    if result.timed_out or result.error or result.exit_code != 0:
        return _process_failure(result)
    if result.truncated:
        return f"output cut: {_OUTPUT_CAP}"
    return f"wrong output: expected {_preview(expected)}, got {_preview(result.stdout)}"


def _process_failure(result: ExecutionResult) -> str:
    """Why a process ended badly: the limit it hit, or its exit code and last stderr line."""
    if result.error:
        return result.error
    last = result.stderr.strip().splitlines()[-1:] or [""]
    return f"exit code {result.exit_code}" + (f": {last[0][:200]}" if last[0] else "")


def _repr(value: Any) -> str:
    try:
        return repr(value)
    except ValueError:  # Python's int->str limit (4300 digits) on this host
        return "a value holding an integer over 4300 digits"


def _preview(value: Any, limit: int = 40) -> str:
    text = value if isinstance(value, str) else repr(value)
    return repr(text if len(text) <= limit else text[:limit] + "...")
