"""The embedded rollout engine: batched `transformers` `generate`, N samples per prompt.

Log-probabilities are recorded during generation by a logits processor that sees the raw
logits (it runs before the temperature/top-p warpers), so `sum_logprob` is the policy's own
log-likelihood of the sample and costs one log-softmax per step, not a second forward pass.
"""

from __future__ import annotations

import inspect
from dataclasses import replace
from pathlib import Path

import torch
from transformers import Cache, DynamicCache, GenerationConfig, LogitsProcessor, LogitsProcessorList

from policies.checkpoint import swap_weights
from policies.engines.base import Completion, SamplingParams
from policies.engines.kv_cache import preallocated_cache
from policies.engines.sampler import InverseCDFSampler
from policies.loading import load_model, load_tokenizer


class _LogprobRecorder(LogitsProcessor):
    """Records log p(token) of each sampled token; at step t it learns the token of step t-1."""

    def __init__(self) -> None:
        self.prev: torch.Tensor | None = None
        self.steps: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.prev is not None:
            self.steps.append(self.prev.gather(1, input_ids[:, -1:]).squeeze(1))
        self.prev = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def finish(self, new_tokens: torch.LongTensor) -> torch.Tensor:
        """Per-token log-probs, shape (batch, generated tokens)."""
        if self.prev is not None and len(self.steps) < new_tokens.shape[1]:
            last = new_tokens[:, len(self.steps)].unsqueeze(1)
            self.steps.append(self.prev.gather(1, last).squeeze(1))
        return torch.stack(self.steps, dim=1)


class HFEngine:
    def __init__(self, model_path: str | Path, generator_id: str, batch_size: int = 256,
                 dtype: str = "float32", device: str | None = None, tokenizer_path: str | Path | None = None,
                 kv_cache: str | None = None):
        self.tokenizer = load_tokenizer(tokenizer_path or model_path)
        self.tokenizer.padding_side = "left"  # decoder-only models generate after the prompt
        self.model = load_model(model_path, dtype=dtype, device=device)
        self.batch_size = batch_size
        self.kv_cache = kv_cache or "static"  # `rollout.kv_cache` unset
        self.generator_id = generator_id
        eos = self.model.generation_config.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        self._eos_ids = sorted({*eos, self.tokenizer.eos_token_id} - {None})
        # `generate` fills every field our config leaves unset from the model's
        # generation_config.json (Qwen ships top_k=20, repetition_penalty=1.05, ...) and then
        # from transformers' global defaults (top_k=50): samples would not come from the policy
        # that `sum_logprob` scores (a repetition penalty still applies greedily). Keep only the token ids.
        # `generate` derives positions from the padding only for models that take `position_ids`;
        # the prompt-once prefill must place tokens where `generate` would, so it needs them too.
        self._prefill_once = "position_ids" in inspect.signature(self.model.forward).parameters
        shipped = self.model.generation_config
        self.model.generation_config = GenerationConfig(
            bos_token_id=shipped.bos_token_id, eos_token_id=shipped.eos_token_id,
            pad_token_id=shipped.pad_token_id, decoder_start_token_id=shipped.decoder_start_token_id)

    def generate(self, prompts: list[str], params: SamplingParams) -> list[list[Completion]]:
        if params.temperature == 0 and params.n > 1:  # greedy samples are identical: decode once
            once = self.generate(prompts, replace(params, n=1))
            return [row * params.n for row in once]
        per_call = max(1, self.batch_size // params.n)
        results: list[list[Completion]] = []
        for start in range(0, len(prompts), per_call):
            results += self._generate_batch(prompts[start : start + per_call], params)
        return results

    def load_weights(self, checkpoint_dir: Path, generator_id: str) -> None:
        swap_weights(self.model, checkpoint_dir)
        self.generator_id = generator_id

    def release_memory(self) -> None:
        """Nothing freed: weights are swapped into this model in place, so it stays loaded."""

    def _generation_config(self, params: SamplingParams) -> GenerationConfig:
        """`generate` always runs greedily: sampling is `InverseCDFSampler`'s (`_processors`)."""
        return GenerationConfig(
            max_new_tokens=params.max_new_tokens,
            do_sample=False,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self._eos_ids,
            stop_strings=list(params.stop) or None,
        )

    @staticmethod
    def _processors(recorder: _LogprobRecorder, params: SamplingParams) -> LogitsProcessorList:
        """The recorder first (it must see the policy's raw logits), then the draw, if sampling."""
        draw = [InverseCDFSampler(params.temperature, params.top_p)] if params.temperature > 0 else []
        return LogitsProcessorList([recorder, *draw])

    @torch.inference_mode()
    def _generate_batch(self, prompts: list[str], params: SamplingParams) -> list[list[Completion]]:
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        enc = enc.to(self.model.device)
        recorder = _LogprobRecorder()
        cache = self._cache(enc["input_ids"].shape[1] + params.max_new_tokens)
        if self._prefill_once and params.n > 1 and enc["input_ids"].shape[1] > 1:
            cache = self._prefill_once_per_prompt(enc, cache, params.n)
        # Each prompt's n rows side by side, as `num_return_sequences` would lay them out
        # (greedy `generate` refuses that option; the draw is ours).
        rows = {key: value.repeat_interleave(params.n, dim=0) for key, value in enc.items()}
        sequences = self.model.generate(
            **rows,
            generation_config=self._generation_config(params),
            logits_processor=self._processors(recorder, params),
            cache=cache,
            tokenizer=self.tokenizer if params.stop else None,
        )
        new_tokens = sequences[:, enc["input_ids"].shape[1] :]
        logprobs = recorder.finish(new_tokens)
        lengths, finished = self._lengths(new_tokens, params.stop)
        mask = torch.arange(new_tokens.shape[1], device=new_tokens.device)[None, :] < lengths[:, None]
        sums = (logprobs * mask).sum(dim=1).tolist()
        flat = []
        for row, length, total, done in zip(new_tokens, lengths.tolist(), sums, finished.tolist()):
            text = _cut_at_stop(self.tokenizer.decode(row[:length], skip_special_tokens=True), params.stop)
            flat.append(Completion(text, length, total, "stop" if done else "length"))
        return [flat[i : i + params.n] for i in range(0, len(flat), params.n)]

    def _cache(self, length: int) -> Cache | None:
        """`static`: a cache of this call's full length, written in place (`kv_cache.py`);
        `dynamic`: None, and `generate` grows one. Made per call so that its length is this
        call's, not the longest any earlier call asked for."""
        return preallocated_cache(self.model.config, length) if self.kv_cache == "static" else None

    def _prefill_once_per_prompt(self, enc, cache: Cache | None, n: int) -> Cache:
        """The prompts' keys and values, computed once per prompt and repeated for its n samples.

        With `num_return_sequences=n`, `generate` repeats each prompt n times before its
        prefill, so every prompt runs through the model n times; vLLM shares it (prefix
        caching). Every token but the last goes in here; `generate` sees the filled cache and
        runs only the last one, per sample, which gives the first sampled token's logits.
        Positions follow the left padding exactly as `generate` counts them.
        """
        ids, mask = enc["input_ids"][:, :-1], enc["attention_mask"][:, :-1]
        cache = cache if cache is not None else DynamicCache(config=self.model.config)
        positions = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)
        self.model(input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True,
                   logits_to_keep=1)
        cache.reorder_cache(torch.arange(ids.shape[0], device=ids.device).repeat_interleave(n))
        return cache

    def _lengths(self, new_tokens: torch.Tensor, stop: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens each row really generated (through its EOS or stop string), and whether it stopped.

        Finished rows are padded by `generate`, and padding may share the EOS id, so the end
        is the first EOS or the token that completed a stop string, whichever comes first.
        """
        width = new_tokens.shape[1]
        is_eos = torch.isin(new_tokens, torch.tensor(self._eos_ids, device=new_tokens.device))
        has_eos = is_eos.any(dim=1)
        lengths = torch.where(has_eos, is_eos.int().argmax(dim=1) + 1, width)
        finished = has_eos.clone()
        if stop:
            for i, row in enumerate(new_tokens.tolist()):
                end = self._stop_string_end(row[: lengths[i]], stop)
                if end is not None:
                    lengths[i], finished[i] = end, True
        return lengths, finished

    def _stop_string_end(self, tokens: list[int], stop: tuple[str, ...]) -> int | None:
        """Length of the shortest prefix whose text contains a stop string (None: none does)."""
        if not any(s in self.tokenizer.decode(tokens, skip_special_tokens=True) for s in stop):
            return None
        lo, hi = 1, len(tokens)  # containment is monotone in the prefix: binary search
        while lo < hi:
            mid = (lo + hi) // 2
            if any(s in self.tokenizer.decode(tokens[:mid], skip_special_tokens=True) for s in stop):
                hi = mid
            else:
                lo = mid + 1
        return lo


def _cut_at_stop(text: str, stop: tuple[str, ...]) -> str:
    """Drop the first stop string and what follows, as vLLM does by default."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=len(text))
    return text[:cut]
