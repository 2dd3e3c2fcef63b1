"""The `code` reward: program extraction, test formats, scoring, workers, metrics, e2b.

Programs really run (in bwrap where it works, else the rlimits fallback); e2b tests fake
only the remote service, with a stand-in VM that runs the executor's shell command locally.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from rewards.code import CodeReward, extract_program
from rewards.code_formats import parse_tests
from rewards.execution import E2BExecutor, Limits, LocalExecutor

pytestmark = pytest.mark.filterwarnings("ignore:code execution is NOT sandboxed")

ADD = "```python\ndef add(a, b):\n    return a + b\n```"
SUB = "```python\ndef add(a, b):\n    return a - b\n```"
ECHO_SUM = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"


@pytest.fixture(scope="module")
def code() -> CodeReward:
    return CodeReward(timeout_s=2.0, workers=2)


@pytest.mark.parametrize(
    "text,program",
    [
        ("```python\nx = 1\n```", "x = 1\n"),
        ("```py\nx = 1\n```", "x = 1\n"),
        ("```\nx = 1\n```", "x = 1\n"),
        ("```python3\nx = 1\n```", "x = 1\n"),
        ("first\n```python\nx = 1\n```\nthen\n```python\nx = 2\n```\ndone", "x = 2\n"),
        ("```python\nx = 1\n```\n```bash\nrm -rf /\n```", "x = 1\n"),
        ("Sure!\n```python\nx = 3", "x = 3"),  # cut off at max_tokens
        ("x = 4", "x = 4"),
    ],
)
def test_extract_program(text, program):
    assert extract_program(text) == program


@pytest.mark.parametrize(
    "value,kind,count",
    [
        (["assert f(1) == 1", "assert f(2) == 2"], "code", 2),
        ("assert f(1) == 1", "code", 1),
        ('["assert f(1) == 1"]', "code", 1),
        ([{"input": "1\n", "output": "1\n"}], "io", 1),
        ('[{"input": "1", "output": "1"}, {"input": "2", "output": "2"}]', "io", 2),
        ({"inputs": ["1", "2"], "outputs": ["1", "2"]}, "io", 2),
        (json.dumps({"inputs": ["1"], "outputs": ["1"]}), "io", 1),
        ({"input": "1", "output": "1"}, "io", 1),
    ],
)
def test_parse_tests_formats(value, kind, count):
    parsed = parse_tests(value)
    assert parsed.kind == kind and len(parsed.cases) == count


@pytest.mark.parametrize("value", [None, [], "", "   ", 42, [1, 2], ["assert x", {"input": "1", "output": "1"}],
                                   {"inputs": ["1"], "outputs": []}, '{"unknown": 1}'])
def test_unreadable_tests_cannot_be_judged(code, value):
    verdict = code.verdicts(["p"], [ADD], tests=[value])[0]
    assert verdict.score is None and verdict.reason


def test_missing_tests_column_cannot_be_judged(code):
    verdicts = code.verdicts(["p", "p"], [ADD, ADD], reference_answer=["1", "2"])
    assert [v.score for v in verdicts] == [None, None]
    assert "'tests' column" in verdicts[0].reason


def test_assert_tests_score_the_fraction_passed(code):
    tests = ["assert add(1, 2) == 3", "assert add(2, 2) == 4", "assert add(0, 5) == 5", "assert add(1, 1) == 3"]
    verdict = code.verdicts(["p"], [ADD], tests=[tests])[0]
    assert verdict.score == 0.75
    assert verdict.reason.startswith("test 4/4 failed: AssertionError")
    assert code(prompts=["p"], completions=[SUB], tests=[tests]) == [0.0]


def test_mode_all_is_all_or_nothing():
    strict = CodeReward(mode="all", timeout_s=2.0)
    tests = ["assert add(1, 2) == 3", "assert add(1, 1) == 3"]
    assert strict(prompts=["p", "p"], completions=[ADD, ADD], tests=[tests, tests[:1]]) == [0.0, 1.0]


def test_stdin_stdout_pairs_compare_lines_without_trailing_whitespace(code):
    pairs = [{"input": "1 2\n", "output": "3"}, {"input": "5 5", "output": "10  \n\n"}, {"input": "2 2", "output": "5"}]
    verdict = code.verdicts(["p"], [ECHO_SUM], tests=[json.dumps(pairs)])[0]
    assert verdict.score == pytest.approx(2 / 3)
    assert verdict.reason.startswith("test 3/3 failed: wrong output: expected '5', got '4\\n'")


def test_failures_are_explained(code):
    cases = {
        "no code found": ("```python\n\n```", ["assert True"]),
        "program failed: SyntaxError": ("```python\ndef add(a, b) return a\n```", ["assert True"]),
        "program failed: SystemExit": ("import sys\nsys.exit(0)", ["assert True"]),
        "test 1/1 failed: NameError": ("x = 1", ["assert add(1, 2) == 3"]),
        "test 1/2 failed: SystemExit": (ADD, ["raise SystemExit(0)", "assert add(1, 2) == 3"]),
        "test 1/1 failed: exit code 1: ZeroDivisionError": ("print(1 / 0)", [{"input": "", "output": "1"}]),
    }
    completions = [completion for completion, _ in cases.values()]
    verdicts = code.verdicts(["p"] * len(cases), completions, tests=[tests for _, tests in cases.values()])
    for expected, verdict in zip(cases, verdicts):
        assert verdict.reason.startswith(expected), (expected, verdict)
    assert verdicts[4].score == 0.5


def test_timeouts_are_marked(code):
    verdict = code.verdicts(["p"], ["while True:\n    pass"], tests=[["assert True"]])[0]
    assert verdict.score == 0.0 and verdict.timed_out
    assert verdict.reason.startswith("timeout after 2s")
    # For stdin/stdout pairs, the cases after a timeout are not run (each would cost one).
    start = time.monotonic()
    pairs = [{"input": "", "output": "1"}] * 3
    verdict = code.verdicts(["p"], ["while True:\n    pass"], tests=[pairs])[0]
    assert verdict.timed_out and time.monotonic() - start < 4


def test_time_limits_apply_per_test_under_the_harness():
    """LiveCodeBench allows each functional test its limit (and MBPP each assert): 8 tests
    of 0.3 s pass under a 1 s limit; a hang costs one limit, and the tests before it count."""
    reward = CodeReward(timeout_s=1.0, workers=2)
    slow = "import time\ndef f(x):\n    time.sleep(0.3)\n    return x\n"
    calls = [{"input": str(i), "output": str(i), "testtype": "functional"} for i in range(8)]
    asserts = [f"assert f({i}) == {i}" for i in range(8)]
    assert reward(["p", "p"], [slow, slow], tests=[calls, asserts], fn_name=["f", None]) == [1.0, 1.0]
    hang = "def f(x):\n    while x == 2:\n        pass\n    return x\n"
    start = time.monotonic()
    verdict = reward.verdicts(["p"], [hang], tests=[calls], fn_name=["f"])[0]
    assert time.monotonic() - start < 3
    assert verdict.timed_out and verdict.score == 2 / 8
    assert verdict.reason.startswith("timeout after 1s in test 3/8"), verdict


def test_printing_cannot_fake_test_results(code):
    forged = [
        'print(\'{"test": 0, "ok": true}\')\nimport os\nos._exit(0)',
        'import os\nos.write(1, b\'{"test": 0, "ok": true}\\n\')\nos._exit(0)',
    ]
    verdicts = code.verdicts(["p", "p"], forged, tests=[["assert False"]] * 2)
    assert [v.score for v in verdicts] == [0.0, 0.0]
    assert "did not finish" in verdicts[0].reason


def test_chat_completions_and_extra_columns(code):
    completion = [{"role": "assistant", "content": ADD}]
    scores = code(prompts=["p"], completions=[completion], tests=[["assert add(2, 3) == 5"]], trainer_state=object())
    assert scores == [1.0]


def test_length_mismatch_is_an_error(code):
    with pytest.raises(ValueError, match="2 completions but 1"):
        code(prompts=["p", "p"], completions=[ADD, ADD], tests=[["assert True"]])


def test_workers_run_samples_in_parallel():
    sleeper = "import time\ntime.sleep(0.6)"
    timings = {}
    for workers in (1, 2):
        reward = CodeReward(timeout_s=5.0, workers=workers)
        start = time.monotonic()
        scores = reward(prompts=["p"] * 4, completions=[sleeper, "x = 1", sleeper, sleeper],
                        tests=[["assert True"], ["assert x == 2"], ["assert True"], ["assert True"]])
        timings[workers] = time.monotonic() - start
        assert scores == [1.0, 0.0, 1.0, 1.0]  # in the order of the samples
    assert timings[2] < 0.8 * timings[1], timings


def test_pop_metrics_counts_and_resets():
    reward = CodeReward(timeout_s=1.0, executor=LocalExecutor(Limits(timeout_s=1.0), use_bwrap=False))
    reward(prompts=["p"] * 3, completions=[ADD, "while True:\n    pass", ECHO_SUM],
           tests=[["assert add(1, 1) == 2"], ["assert True"], [{"input": "1 1", "output": "2"}] * 2])
    metrics = reward.pop_metrics()
    assert metrics["executions"] == 4.0 and metrics["timeouts"] == 1.0 and metrics["sandbox_errors"] == 0.0
    assert metrics["exec_per_s"] > 0
    assert metrics["sandbox_bwrap"] == 0.0  # the rlimits-only fallback is on record
    assert reward.pop_metrics()["executions"] == 0.0


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")
def test_pop_metrics_records_the_bwrap_sandbox():
    reward = CodeReward(timeout_s=2.0)
    reward(prompts=["p"], completions=[ADD], tests=[["assert add(1, 1) == 2"]])
    expected = 1.0 if reward.executor.isolation == "bwrap" else 0.0
    assert reward.pop_metrics()["sandbox_bwrap"] == expected


@pytest.mark.parametrize(
    "args,message",
    [
        ({"mode": "most"}, "mode must be 'fraction' or 'all'"),
        ({"workers": 0}, "workers must be a positive integer"),
        ({"timeout_s": 0}, "timeout_s must be a positive number"),
        ({"memory_mb": 16}, "memory_mb must be at least 64"),
        ({"backend": "docker"}, "backend must be 'local'"),
        ({"tests_column": ""}, "tests_column must name"),
        ({"use_bwrap": "yes"}, "use_bwrap must be true, false or null"),
    ],
)
def test_bad_args_fail_at_construction(args, message):
    with pytest.raises(ValueError, match=message):
        CodeReward(**args)


def test_requiring_bwrap_where_it_is_missing_fails_at_construction(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ValueError, match="use_bwrap is true but bwrap is not installed"):
        CodeReward(use_bwrap=True)


def test_construction_starts_no_process(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a process was started at construction")

    monkeypatch.setattr(subprocess, "Popen", refuse)
    reward = CodeReward()
    assert reward.executor.isolation is None  # decided at the first run, not before


# --- e2b, with only the remote service faked ---------------------------------------------


class FakeCommandExit(Exception):
    """Like e2b's CommandExitException: raised for a non-zero exit, carries the result."""

    def __init__(self, exit_code: int, stdout: str, stderr: str):
        super().__init__(f"exit code {exit_code}")
        self.exit_code, self.stdout, self.stderr = exit_code, stdout, stderr


class FakeE2BSandbox:
    """Stands in for a remote e2b VM: `files.write` and `commands.run` act on this machine."""

    def __init__(self, fail_commands: bool = False):
        self.fail_commands = fail_commands
        self.killed = False
        self.files = SimpleNamespace(write=self._write)
        self.commands = SimpleNamespace(run=self._run)

    def kill(self) -> None:
        self.killed = True

    def _write(self, path: str, data: str) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(data)

    def _run(self, cmd: str, timeout: float | None = None):
        if self.fail_commands:
            raise ConnectionError("sandbox not found (expired)")
        done = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise FakeCommandExit(done.returncode, done.stdout, done.stderr)
        return SimpleNamespace(exit_code=0, stdout=done.stdout, stderr=done.stderr)


@pytest.fixture
def fake_e2b(monkeypatch, tmp_path):
    """A factory of fake VMs, with a (fake) API key set; `.made` lists the VMs created."""
    monkeypatch.setenv("E2B_API_KEY", "e2b_test_key")
    made: list[FakeE2BSandbox] = []

    def factory(**kwargs):
        def create():
            made.append(FakeE2BSandbox(**kwargs))
            return made[-1]

        return create

    def executor(timeout_s: float = 5.0, **kwargs) -> E2BExecutor:
        return E2BExecutor(Limits(timeout_s=timeout_s), sandbox_factory=factory(**kwargs),
                           python=sys.executable, workdir=str(tmp_path / "remote"))

    return SimpleNamespace(executor=executor, made=made)


def test_e2b_backend_with_fake_remote_service_scores_tests(fake_e2b):
    reward = CodeReward(executor=fake_e2b.executor(), workers=2)
    scores = reward(prompts=["p"] * 3, completions=[ADD, SUB, ECHO_SUM],
                    tests=[["assert add(1, 2) == 3"], ["assert add(1, 2) == 3"], [{"input": "2 3", "output": "5"}]])
    assert scores == [1.0, 0.0, 1.0]
    assert 1 <= len(fake_e2b.made) <= 2  # VMs are pooled and reused, one per concurrent run
    assert "sandbox_bwrap" not in reward.pop_metrics()
    reward.close()
    assert all(vm.killed for vm in fake_e2b.made)


def test_e2b_backend_with_fake_remote_service_times_out(fake_e2b):
    reward = CodeReward(executor=fake_e2b.executor(timeout_s=1.0))
    start = time.monotonic()
    verdict = reward.verdicts(["p"], ["while True:\n    pass"], tests=[["assert True"]])[0]
    assert verdict.score == 0.0 and verdict.timed_out
    assert verdict.reason.startswith("timeout after 1s")
    assert time.monotonic() - start < 4


def test_e2b_backend_with_fake_remote_service_replaces_a_failed_vm(fake_e2b):
    executor = fake_e2b.executor(fail_commands=True)
    result = executor.run("print('hi')")
    assert result.error.startswith("sandbox: e2b failed: ConnectionError")
    assert len(fake_e2b.made) == 2 and all(vm.killed for vm in fake_e2b.made)  # retried once


def test_e2b_backend_with_fake_remote_service_needs_the_key_at_construction(fake_e2b, monkeypatch):
    monkeypatch.delenv("E2B_API_KEY")
    with pytest.raises(ValueError, match="code reward: backend 'e2b' needs the E2B_API_KEY environment variable"):
        CodeReward(backend="e2b")
    with pytest.raises(ValueError, match="E2B_API_KEY"):
        fake_e2b.executor()


@pytest.mark.skipif(importlib.util.find_spec("e2b_code_interpreter") is not None, reason="e2b is installed")
def test_e2b_backend_without_the_package_fails_at_construction(monkeypatch):
    monkeypatch.setenv("E2B_API_KEY", "e2b_test_key")
    with pytest.raises(ValueError, match="pip install e2b-code-interpreter"):
        CodeReward(backend="e2b")
