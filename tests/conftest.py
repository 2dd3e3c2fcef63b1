"""Shared fixtures and helpers: a tiny Qwen2 built from config (no download) and its char
tokenizer; a tiny run's config (`write_config`); launching, killing and reading a real run."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The suite's `datasets` cache (task files read by `load_dataset`, tests' own `from_parquet`)
# goes to a directory of its own, removed at exit, not into the developer's ~/.cache; runs
# the tests launch inherit it. Set before anything imports `datasets`.
os.environ["HF_DATASETS_CACHE"] = _DATASETS_CACHE = tempfile.mkdtemp(prefix="selfloop-tests-datasets-")
atexit.register(shutil.rmtree, _DATASETS_CACHE, ignore_errors=True)

import pytest  # noqa: E402
import yaml  # noqa: E402

from policies.model_config import ModelConfig, TinyModelConfig  # noqa: E402

TINY_MODEL = ModelConfig(tiny=TinyModelConfig(num_layers=1, hidden_size=32, num_heads=2, intermediate_size=64))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A 1-layer Qwen2 with random weights, saved like any `from_pretrained` directory."""
    from policies.loading import build_tiny

    return build_tiny(TINY_MODEL, seed=0, out_dir=tmp_path_factory.mktemp("tiny") / "model")


TINY = {
    "name": "tiny",
    "seed": 3,
    "rounds": 2,
    "model": {"tiny": {"arch": "qwen2", "num_layers": 1, "hidden_size": 32, "num_heads": 2,
                       "intermediate_size": 64}},
    "data": {"task": {"train_size": 64, "eval_size": 12, "seed_size": 16, "num_operands": 2, "max_operand": 9},
             "prompts_per_round": 16},
    "rollout": {"n": 2, "max_new_tokens": 24, "batch_size": 8, "prompts_per_shard": 1},
    # threshold 0 keeps every sample, so every round trains (a random tiny model is rarely right)
    "update": {"threshold": 0.0, "max_per_prompt": 2, "batch_size": 4, "save_steps": 1, "seed_epochs": 1,
               "learning_rate": 1e-3},
    "eval": {"k": 2},
    "control": {"enabled": True},
    "tracking": {"wandb": False},
    # Runs compared bit for bit must compute with the same thread counts; "auto" follows the load.
    "threads": {"train": 1, "generate": 1},
}


def write_config(tmp_path: Path, **changes) -> Path:
    cfg = json.loads(json.dumps(TINY))
    cfg["runs_dir"] = str(tmp_path / "runs")
    for dotted, value in changes.items():
        node = cfg
        *parents, leaf = dotted.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def comparable(run_dir: Path) -> list[dict]:
    """metrics.jsonl without wall-clock values, which legitimately differ between runs; NaN (an
    undefined metric, e.g. AUROC with one class) becomes None so that equal runs compare equal."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: None if v != v else v for k, v in row.items() if not k.startswith("time/") and not k.endswith("seconds")}
            for row in rows]


def roll_back_to_generate(run: Path) -> None:
    """state.json as a run killed right after round 1's generation leaves it."""
    state = json.loads((run / "state.json").read_text())
    state.update(round=1, phase="generate", done=False, generator=state["policies"]["0"], generator_id="round_000")
    (run / "state.json").write_text(json.dumps(state))
    (run / "metrics.jsonl").write_text((run / "metrics.jsonl").read_text().splitlines()[0] + "\n")


def launch(config: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "loop", "run", str(config)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def kill_when(proc: subprocess.Popen, ready, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"loop exited ({proc.returncode}) before the kill point: {proc.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the kill point was never reached")
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def read_state(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "state.json").read_text())
    except (OSError, ValueError):
        return {}


def weight_change(before: Path, after: Path) -> float:
    """The largest absolute difference between two saved policies' tensors (same names)."""
    from safetensors.torch import load_file

    a, b = load_file(str(Path(before) / "model.safetensors")), load_file(str(Path(after) / "model.safetensors"))
    assert a.keys() == b.keys()
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
