"""Sampling over HTTP: our `SamplingParams` as `/v1/completions` requests, their answers as
`Completion`s, prompts sharded over a `ServerPool`. Shared by the `vllm_server` and `openai`
engines.

Every sampling field is sent explicitly: a field left out takes the served model's
generation_config (a Qwen `top_k=20` would leak in), so the server would not sample what
the config says. `logprobs: 0` returns the sampled tokens' log-probabilities (vLLM's default
`raw_logprobs`: before temperature and top-p, i.e. the policy's own, as `sum_logprob` means).
The prompts arrive rendered (chat template applied), so no special tokens are added again.
"""

from __future__ import annotations

import math
from dataclasses import replace

from policies.engines.base import Completion, SamplingParams
from policies.engines.server_pool import ServerPool


def openai_request(model: str, prompts: list[str], params: SamplingParams, seed: int | None) -> dict:
    """A completion request in the fields of OpenAI's API (any compatible server takes them)."""
    body = {"model": model, "prompt": prompts, "n": params.n, "temperature": params.temperature,
            "top_p": params.top_p, "max_tokens": params.max_new_tokens, "stop": list(params.stop) or None,
            "logprobs": 0, "presence_penalty": 0.0, "frequency_penalty": 0.0}
    if seed is not None:
        body["seed"] = seed
    return body


def vllm_request(model: str, prompts: list[str], params: SamplingParams, seed: int | None) -> dict:
    """OpenAI's fields plus vLLM's own: every sampling knob pinned, token ids returned."""
    return {**openai_request(model, prompts, params, seed), "top_k": 0, "min_p": 0.0,
            "repetition_penalty": 1.0, "min_tokens": 0, "ignore_eos": False,
            "skip_special_tokens": True, "include_stop_str_in_output": False,
            "add_special_tokens": False, "return_token_ids": True}


def parse_completions(payload: dict, num_prompts: int, n: int) -> list[list[Completion]]:
    """`n` completions per prompt from a completion response (choice i*n + k = prompt i, sample k)."""
    choices = sorted(payload.get("choices", []), key=lambda c: c["index"])
    if len(choices) != num_prompts * n:
        raise ValueError(f"server answered {len(choices)} choices for {num_prompts} prompts x n={n}")
    flat = []
    for choice in choices:
        logprobs = choice.get("logprobs") or {}
        token_logprobs = [x for x in logprobs.get("token_logprobs") or [] if x is not None]
        token_ids = choice.get("token_ids")
        count = len(token_ids) if token_ids is not None else len(logprobs.get("tokens") or [])
        total = math.fsum(token_logprobs) if logprobs else math.nan  # nan: the server gave none
        finish = "length" if choice.get("finish_reason") == "length" else "stop"
        flat.append(Completion(choice["text"], count, total, finish))
    return [flat[i : i + n] for i in range(0, len(flat), n)]


class RemoteSampler:
    """Sample from whatever model the pool serves under `model`, shard by shard."""

    def __init__(self, pool: ServerPool, build_request, prompts_per_request: int):
        self.pool = pool
        self.build_request = build_request
        self.prompts_per_request = prompts_per_request

    def generate(self, model: str, prompts: list[str], params: SamplingParams) -> list[list[Completion]]:
        if params.temperature == 0 and params.n > 1:  # greedy samples are identical; vLLM refuses n>1
            once = self.generate(model, prompts, replace(params, n=1))
            return [row * params.n for row in once]
        size = self.prompts_per_request
        shards = [(i, prompts[start : start + size]) for i, start in enumerate(range(0, len(prompts), size))]

        def complete(url: str, shard: tuple[int, list[str]]) -> list[list[Completion]]:
            index, texts = shard
            # One seed per shard, not per server: a shard redone elsewhere samples the same.
            seed = None if params.seed is None else (params.seed + index) % 2**31
            payload = self.pool.call(url, "/v1/completions", self.build_request(model, texts, params, seed))
            return parse_completions(payload, len(texts), params.n)

        return [row for rows in self.pool.map(shards, complete) for row in rows]
