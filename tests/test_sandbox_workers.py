"""The killable workers verifiers run in: one `Sandbox` per call stream, a `SandboxPool` over
cores; a timeout or a crash costs one call, and the math reward's pool and cache on top."""

from __future__ import annotations

import threading
import time

import pytest

from rewards import MathReward
from rewards.sandbox import Sandbox
from rewards.sandbox_pool import SandboxPool


def test_sandbox_recovers_from_timeouts_crashes_and_errors():
    # eval stands in for any verifier: the test controls exactly how each call misbehaves.
    steps = [
        ("1 + 1", 2, ""),
        ("__import__('time').sleep(30)", None, "timeout after 0.5s"),
        ("2 + 2", 4, ""),
        ("__import__('os')._exit(3)", None, "worker exited unexpectedly (exit code 3)"),
        ("3 + 3", 6, ""),
        ("1 / 0", None, "ZeroDivisionError: division by zero"),
        ("print('noise') or 4 + 4", 8, ""),
    ]
    with Sandbox("builtins:eval", timeout_s=0.5) as sandbox:
        for expression, value, error in steps:
            result = sandbox.call(expression)
            assert (result.value, result.error) == (value, error), expression
            assert result.timed_out == error.startswith("timeout")


def test_sandbox_reports_a_worker_that_cannot_start():
    result = Sandbox("no_such_module:verify", timeout_s=1.0).call("x")
    assert result.worker_failed and "no_such_module" in result.error


def test_sandbox_pool_keeps_order_and_limits_each_call_in_a_batch():
    # Misbehaving calls in the middle of batches, spread over two workers: each costs only
    # itself, and every other call is answered, in order.
    calls = [(f"{i} * 2",) for i in range(40)]
    calls[5] = ("__import__('time').sleep(30)",)
    calls[23] = ("__import__('os')._exit(3)",)
    with SandboxPool("builtins:eval", timeout_s=0.5, workers=2) as pool:
        start = time.monotonic()
        results = pool.map(calls)
        assert time.monotonic() - start < 25  # not the 30 s sleep: four worker starts at most
    assert results[5].timed_out and results[5].error == "timeout after 0.5s"
    assert results[23].error == "worker exited unexpectedly (exit code 3)"
    assert [r.value for i, r in enumerate(results) if i not in (5, 23)] == [2 * i for i in range(40) if i not in (5, 23)]


def test_sandbox_pool_starts_a_worker_for_every_eight_calls_and_reuses_those_up():
    with SandboxPool("builtins:eval", timeout_s=5.0, workers=2) as pool:
        assert [r.value for r in pool.map([("1 + 1",), ("2 + 2",), ("3 + 3",)])] == [2, 4, 6]
        assert pool.running == 1  # a second start would cost more than these three calls
        pool._sandboxes[0].close()  # (as a timeout kills one)
        pool._sandboxes[1].call("0")
        assert [r.value for r in pool.map([("5",)])] == [5]
        assert pool.running == 1 and pool._sandboxes[1].running  # the one up answered it
        assert [r.value for r in pool.map([(str(i),) for i in range(9)])] == list(range(9))
        assert pool.running == 2


def test_sandbox_pool_submit_maps_in_the_background_one_at_a_time_in_order():
    with SandboxPool("builtins:eval", timeout_s=5.0, workers=2) as pool:
        slow = pool.submit([("__import__('time').sleep(1) or 'slow'",)])
        quick = pool.submit([(f"{i} + 1",) for i in range(20)])
        assert not slow.done()  # the caller goes on while the worker sleeps
        beside = threading.Thread(target=lambda: got.append([r.value for r in pool.map([("7",)])]))
        got: list = []
        beside.start()  # a `map` from another thread waits its turn
        assert [r.value for r in quick.result()] == list(range(1, 21))
        assert slow.done() and slow.result()[0].value == "slow"
        beside.join()
        assert got == [[7]]


def test_math_reward_caches_symbolic_checks_and_spreads_them_over_workers():
    references = [rf"\frac{{{i}}}{{{i + 1}}}" for i in range(12)]
    completions = [rf"\boxed{{\frac{{{2 * i}}}{{{2 * i + 2}}}}}" for i in range(12)]
    with MathReward(timeout_s=5.0, workers=2) as reward:
        assert reward(["q"] * 12, completions, reference_answer=references) == [1.0] * 12
        assert reward._pool.running == 2
        reward.close()
        # Every pair is remembered: scoring them again needs no worker.
        assert reward(["q"] * 12, completions[::-1], reference_answer=references[::-1]) == [1.0] * 12
        assert reward._pool.running == 0


@pytest.mark.parametrize("workers", [0, -1, 1.5])
def test_math_reward_rejects_bad_worker_counts(workers):
    with pytest.raises(ValueError, match="workers must be a positive"):
        MathReward(workers=workers)
