"""Executors: run one untrusted Python program somewhere isolated and report what it did.

`LocalExecutor` (bubblewrap sandbox, or rlimits-only fallback) and `E2BExecutor` (e2b cloud
VMs) share one small interface (`Executor`), so the `code` reward can switch between them
with one config value. Neither module imports anything heavy or remote at import time.
"""

from rewards.execution.base import ExecutionResult, Executor, Harness, Limits, signal_error
from rewards.execution.e2b import E2BExecutor
from rewards.execution.local import LocalExecutor

__all__ = ["E2BExecutor", "ExecutionResult", "Executor", "Harness", "Limits", "LocalExecutor", "signal_error"]
