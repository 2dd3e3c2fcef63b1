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
- sharing the GPU with training: `release_memory()` (the controller calls it before each
  update) is `sleep(level=2)`, which drops weights and KV cache; the next `load_weights` is
  `wake_up(["weights"])` → reload → `reset_prefix_cache()` → `wake_up(["kv_cache"])`.
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
        self.weights_path: str | None = None  # the last checkpoint loaded; None = the one it started with
        self.asleep = False

    def generate(self, prompts: list[str], params: SamplingParams) -> list[list[Completion]]:
        if params.temperature == 0 and params.n > 1:
            once = self.generate(prompts, replace(params, n=1))
            return [row * params.n for row in once]
        if not prompts:
            return []
        if self.asleep:  # level 2 dropped the weights: waking alone would sample from garbage
            self._reload(self.weights_path)
        outputs = self.llm.generate(prompts, vllm_sampling_params(params), use_tqdm=False)
        return completions_from(outputs)

    def load_weights(self, checkpoint_dir: Path, generator_id: str) -> None:
        self._reload(str(Path(checkpoint_dir).resolve()))
        self.generator_id = generator_id

    def release_memory(self) -> None:
        """Give the GPU to training: sleep level 2 drops weights and KV cache (reloaded after)."""
        if self.options.sleep_during_update and not self.asleep:
            self.llm.sleep(level=2)
            self.asleep = True

    def _reload(self, weights_path: str | None) -> None:
        """Read the weights in place; asleep, wake the weights' memory first and the KV cache
        last, so the reload never has to share the GPU with a KV cache."""
        if self.asleep:
            self.llm.wake_up(tags=["weights"])
        kwargs = {"weights_path": weights_path} if weights_path else {}  # none: the model it started with
        self.llm.collective_rpc("reload_weights", kwargs=kwargs)
        self.llm.reset_prefix_cache()  # cached prefixes were computed with the old weights
        if self.asleep:
            self.llm.wake_up(tags=["kv_cache"])
            self.asleep = False
        self.weights_path = weights_path
