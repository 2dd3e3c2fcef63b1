"""The in-process `vllm` engine driven by the real controller, against a FAKE `vllm.LLM`
(vLLM cannot run on a CPU): the fake answers with a real tiny HF model and keeps vLLM's sleep
rules (no generating while asleep, no reload into slept weights, level 2 discards the weights).
What is checked is the call sequence the loop makes: sleep(level=2) before every training,
then wake_up(weights) -> reload_weights -> reset_prefix_cache -> wake_up(kv_cache).

vLLM's own pure-Python modules (its `RequestOutput`, `SamplingParams`) come from `.vllm_site`
(tests/vllm_site.py); without it the module is skipped.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import write_config
from loop.cli import main
from policies.checkpoint import swap_weights
from policies.engines.base import SamplingParams
from policies.engines.config import VLLMOptions
from policies.engines.hf import HFEngine
from policies.engines.vllm import VLLMEngine
from vllm_site import import_vllm

vllm = import_vllm()
from vllm.outputs import CompletionOutput, RequestOutput  # noqa: E402

SLEEP = ["sleep(level=2)"]


def woken_reload(path: str) -> list[str]:
    return ["wake_up(['weights'])", f"reload {path}", "reset_prefix_cache", "wake_up(['kv_cache'])"]


def reload(path: str) -> list[str]:
    return [f"reload {path}", "reset_prefix_cache"]


class FakeLLM:
    """`vllm.LLM`'s offline API over a real tiny HF model; records every call in `calls`."""

    instances: list["FakeLLM"] = []

    def __init__(self, model: str, tokenizer: str, enable_sleep_mode: bool = False, **engine_args):
        self.engine = HFEngine(model, "fake", batch_size=64, device="cpu", tokenizer_path=tokenizer)
        self.model_path = model
        self.enable_sleep_mode = enable_sleep_mode
        self.asleep: set[str] = set()
        self.calls: list[str] = []
        FakeLLM.instances.append(self)

    def get_tokenizer(self):
        return self.engine.tokenizer

    def generate(self, prompts, sampling_params, use_tqdm=True):
        assert not self.asleep, f"generate while {sorted(self.asleep)} asleep"
        if self.calls[-1:] != ["generate"]:
            self.calls.append("generate")
        sp = sampling_params
        ours = SamplingParams(n=sp.n, temperature=sp.temperature, top_p=sp.top_p, max_new_tokens=sp.max_tokens,
                              stop=tuple(sp.stop or ()))
        rows = self.engine.generate(prompts, ours)
        return [RequestOutput(str(i), prompt, [], None,
                              [CompletionOutput(j, c.text, [0] * c.token_count, c.sum_logprob, None, c.finish_reason)
                               for j, c in enumerate(row)], finished=True)
                for i, (prompt, row) in enumerate(zip(prompts, rows))]

    def sleep(self, level: int = 1, mode: str = "abort") -> None:
        assert self.enable_sleep_mode, "vLLM refuses sleep() without enable_sleep_mode"
        self.calls.append(f"sleep(level={level})")
        self.asleep = {"weights", "kv_cache"}
        if level == 2:  # the weights are gone: only a reload brings them back
            with torch.no_grad():
                for p in self.engine.model.parameters():
                    p.fill_(float("nan"))

    def wake_up(self, tags: list[str] | None = None) -> bool:
        self.calls.append(f"wake_up({tags})")
        self.asleep -= set(tags or ("weights", "kv_cache"))
        return not self.asleep

    def collective_rpc(self, method: str, timeout=None, args=(), kwargs=None):
        assert method == "reload_weights" and "weights" not in self.asleep
        path = (kwargs or {}).get("weights_path", self.model_path)
        swap_weights(self.engine.model, Path(path))
        self.calls.append(f"reload {path}")
        return [None]

    def reset_prefix_cache(self, reset_running_requests: bool = False, reset_connector: bool = False) -> bool:
        self.calls.append("reset_prefix_cache")
        return True


@pytest.fixture
def fake_llm(monkeypatch):
    FakeLLM.instances = []
    monkeypatch.setitem(vars(vllm), "LLM", FakeLLM)  # not setattr: reading the real LLM imports its engine
    return FakeLLM


def test_loop_sleeps_fake_vllm_llm_for_each_training_and_reloads_after(tmp_path, fake_llm):
    config = write_config(tmp_path, rollout__engine="vllm", rounds=1)
    assert main(["run", str(config)]) == 0
    [llm] = fake_llm.instances
    run = (tmp_path / "runs" / "tiny").resolve()
    calls = [c.replace(str(run) + "/", "") for c in llm.calls]
    assert calls == (
        SLEEP + woken_reload("round_000/checkpoint") + ["generate"]  # round 0: seed SFT; evaluate, round 1's rollouts
        + SLEEP + woken_reload("round_001/checkpoint") + ["generate"]  # train, swap, evaluate
        + SLEEP + woken_reload("round_001/control/checkpoint") + ["generate"]  # control: train, evaluate
        + reload("round_001/checkpoint")  # back to the loop's policy
    )


def test_fake_vllm_llm_asked_to_generate_while_asleep_gets_its_weights_back_first(tiny_model_dir, fake_llm):
    engine = VLLMEngine(tiny_model_dir, "round_000", VLLMOptions())
    engine.release_memory()
    rows = engine.generate(["Q:1+2"], SamplingParams(n=2, max_new_tokens=4))
    [llm] = fake_llm.instances
    assert llm.calls == SLEEP + woken_reload(str(tiny_model_dir)) + ["generate"]
    assert all(c.sum_logprob == c.sum_logprob for c in rows[0])  # not NaN: real weights were reloaded


def test_without_sleep_mode_the_fake_vllm_llm_keeps_its_memory(tiny_model_dir, fake_llm):
    engine = VLLMEngine(tiny_model_dir, "round_000", VLLMOptions(sleep_during_update=False))
    engine.release_memory()
    engine.load_weights(Path(tiny_model_dir), "round_001")
    assert fake_llm.instances[0].calls == reload(str(Path(tiny_model_dir).resolve()))
