"""The in-process `vllm` engine: vLLM's offline `LLM`, colocated with training on the same GPUs.

Needs a vLLM that imports next to this environment's torch and transformers (vLLM 0.33 pins
torch 2.14 and transformers < 5.21); otherwise run `vllm serve` in its own environment and use
`vllm_server`. Only vLLM's public API is used (V1 runs the model in another process, so
`llm.llm_engine.model_executor...` is not there to reach into):

- sampling: `LLM.generate(prompts, SamplingParams(n, temperature, top_p, max_tokens, stop,
  seed, logprobs=0))`; `logprobs=0` makes `cumulative_logprob` the sampled tokens' log-prob
  under the raw logits (vLLM's default `raw_logprobs`), which is our `sum_logprob`.
  Greedy with n > 1 is refused by vLLM: decoded once and repeated.
- weight swap: `collective_rpc("reload_weights", kwargs={"weights_path": ckpt})`, then
  `reset_prefix_cache()` (cached prefixes were computed with the old weights).
- sharing the GPU with training: `sleep()` (level 2 drops weights and KV cache) before the
  update, and `wake_up(["weights"])` → reload → `wake_up(["kv_cache"])` after it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from policies.engines.base import Completion, SamplingParams
from policies.engines.config import VLLMOptions


def vllm_sampling_params(params: SamplingParams):
    """vLLM's `SamplingParams` for ours (vLLM validates them on construction)."""
    import vllm

    return vllm.SamplingParams(n=params.n, temperature=params.temperature, top_p=params.top_p, top_k=0,
                               min_p=0.0, max_tokens=params.max_new_tokens, stop=list(params.stop),
                               seed=params.seed, logprobs=0, skip_special_tokens=True)


def completions_from(outputs) -> list[list[Completion]]:
    """Ours from vLLM's `RequestOutput`s, one row per prompt, in prompt order."""
    rows = []
    for request in outputs:
        row = []
        for out in sorted(request.outputs, key=lambda o: o.index):
            finish = "length" if out.finish_reason == "length" else "stop"
            row.append(Completion(out.text, len(out.token_ids), float(out.cumulative_logprob), finish))
        rows.append(row)
    return rows


class VLLMEngine:
    def __init__(self, checkpoint: str | Path, generator_id: str, options: VLLMOptions, dtype: str = "auto",
                 tokenizer_path: str | Path | None = None, seed: int = 0):
        from vllm import LLM

        self.llm = LLM(model=str(checkpoint), tokenizer=str(tokenizer_path or checkpoint), dtype=dtype,
                       gpu_memory_utilization=options.gpu_memory_utilization,
                       tensor_parallel_size=options.tensor_parallel_size, max_model_len=options.max_model_len,
                       enforce_eager=options.enforce_eager, enable_sleep_mode=options.sleep_during_update,
                       seed=seed)
        self.tokenizer = self.llm.get_tokenizer()
        self.generator_id = generator_id
        self.options = options
        self.asleep = False

    def generate(self, prompts: list[str], params: SamplingParams) -> list[list[Completion]]:
        if params.temperature == 0 and params.n > 1:
            once = self.generate(prompts, replace(params, n=1))
            return [row * params.n for row in once]
        if not prompts:
            return []
        self.wake()
        outputs = self.llm.generate(prompts, vllm_sampling_params(params), use_tqdm=False)
        return completions_from(outputs)

    def load_weights(self, checkpoint_dir: Path, generator_id: str) -> None:
        if self.asleep:  # weights first: reloading needs no KV cache
            self.llm.wake_up(tags=["weights"])
        self.llm.collective_rpc("reload_weights", kwargs={"weights_path": str(Path(checkpoint_dir).resolve())})
        if self.asleep:
            self.llm.wake_up(tags=["kv_cache"])
            self.asleep = False
        self.llm.reset_prefix_cache()
        self.generator_id = generator_id

    def sleep(self) -> None:
        """Give the GPU to training: drop weights and KV cache (they are reloaded after)."""
        if self.options.sleep_during_update and not self.asleep:
            self.llm.sleep(level=2)
            self.asleep = True

    def wake(self) -> None:
        if self.asleep:
            self.llm.wake_up()
            self.asleep = False
