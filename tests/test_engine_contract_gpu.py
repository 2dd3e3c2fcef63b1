"""The engine contract on a GPU, for every engine that runs there (`gpu` marker: skipped on a
machine without CUDA, and the `vllm` case where vLLM does not import). The same tiny policy is
served by `hf` on CUDA and by vLLM in this process: sampled log-probs equal the teacher-forced
log-likelihood of the text, and a weight reload changes what is generated."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from policies.checkpoint import save_policy
from policies.engines.base import SamplingParams
from policies.engines.config import VLLMOptions
from policies.loading import load_model, load_tokenizer

pytestmark = pytest.mark.gpu
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
ENGINES = ["hf", pytest.param("vllm", marks=pytest.mark.skipif(importlib.util.find_spec("vllm") is None,
                                                              reason="vLLM does not import here"))]
PROMPTS = ["ab", "hello world", "Q:12+7-3\n", "The answer is"]


def build(name: str, model_dir):
    if name == "hf":
        from policies.engines.hf import HFEngine

        return HFEngine(model_dir, "round_000", batch_size=64, device="cuda")
    from policies.engines.vllm import VLLMEngine

    return VLLMEngine(model_dir, "round_000", VLLMOptions(gpu_memory_utilization=0.3, enforce_eager=True,
                                                           sleep_during_update=False), "float32", None, 0)


@torch.no_grad()
def teacher_forced(model, tokenizer, prompt: str, completion: str) -> float:
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    logits = model(torch.tensor([prompt_ids + completion_ids], device=model.device)).logits[0].float()
    logprobs = torch.log_softmax(logits[len(prompt_ids) - 1 : -1], dim=-1)
    return logprobs.gather(1, torch.tensor(completion_ids, device=model.device)[:, None]).sum().item()


@needs_cuda
@pytest.mark.parametrize("name", ENGINES)
def test_sampled_logprobs_equal_teacher_forced_and_a_reload_changes_outputs(name, tiny_model_dir, tmp_path):
    engine = build(name, tiny_model_dir)
    reference = load_model(tiny_model_dir, device="cuda")
    tokenizer = load_tokenizer(tiny_model_dir)
    params = SamplingParams(n=4, temperature=1.0, max_new_tokens=12, seed=0)
    rows = engine.generate(PROMPTS, params)
    checked = 0
    for prompt, row in zip(PROMPTS, rows):
        for c in row:
            if c.finish_reason == "length" and len(c.text) == c.token_count:  # text is exactly its tokens
                assert c.sum_logprob == pytest.approx(teacher_forced(reference, tokenizer, prompt, c.text), abs=2e-2)
                checked += 1
    assert checked >= 4

    other = load_model(tiny_model_dir, device="cpu")
    with torch.no_grad():
        for p in other.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    save_policy(other, tokenizer, tmp_path / "other")
    greedy = SamplingParams(n=1, temperature=0.0, max_new_tokens=12)
    before = [r[0].text for r in engine.generate(PROMPTS, greedy)]
    engine.load_weights(tmp_path / "other", "round_001")
    after = [r[0].text for r in engine.generate(PROMPTS, greedy)]
    assert before != after and engine.generator_id == "round_001"
