"""The embedded rollout engine: batched `transformers` `generate`, N samples per prompt.

Log-probabilities are recorded during generation by a logits processor that sees the raw
logits (it runs before the temperature/top-p warpers), so `sum_logprob` is the policy's own
log-likelihood of the sample and costs one log-softmax per step, not a second forward pass.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList

from policies.checkpoint import swap_weights
from policies.engines.base import Completion, SamplingParams
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
                 dtype: str = "float32", device: str | None = None):
        self.tokenizer = load_tokenizer(model_path)
        self.tokenizer.padding_side = "left"  # decoder-only models generate after the prompt
        self.model = load_model(model_path, dtype=dtype, device=device)
        self.batch_size = batch_size
        self.generator_id = generator_id
        eos = self.model.generation_config.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        self._stop_ids = sorted({*eos, self.tokenizer.eos_token_id, self.tokenizer.pad_token_id} - {None})

    def generate(self, prompts: list[str], params: SamplingParams) -> list[list[Completion]]:
        per_call = max(1, self.batch_size // params.n)
        results: list[list[Completion]] = []
        for start in range(0, len(prompts), per_call):
            results += self._generate_batch(prompts[start : start + per_call], params)
        return results

    def load_weights(self, checkpoint_dir: Path, generator_id: str) -> None:
        swap_weights(self.model, checkpoint_dir)
        self.generator_id = generator_id

    def _generation_config(self, params: SamplingParams) -> GenerationConfig:
        # A fresh config, so sampling defaults shipped with the model (top_k=20, ...) don't leak in.
        sample = params.temperature > 0
        return GenerationConfig(
            max_new_tokens=params.max_new_tokens,
            do_sample=sample,
            temperature=params.temperature if sample else None,
            top_p=params.top_p if sample else None,
            top_k=None,
            num_return_sequences=params.n,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self._stop_ids[:1] if self.tokenizer.pad_token_id in self._stop_ids else self._stop_ids,
            stop_strings=list(params.stop) or None,
        )

    @torch.inference_mode()
    def _generate_batch(self, prompts: list[str], params: SamplingParams) -> list[list[Completion]]:
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        enc = enc.to(self.model.device)
        recorder = _LogprobRecorder()
        sequences = self.model.generate(
            **enc,
            generation_config=self._generation_config(params),
            logits_processor=LogitsProcessorList([recorder]),
            tokenizer=self.tokenizer if params.stop else None,
        )
        new_tokens = sequences[:, enc["input_ids"].shape[1] :]
        logprobs = recorder.finish(new_tokens)
        lengths, finished = self._lengths(new_tokens)
        mask = torch.arange(new_tokens.shape[1], device=new_tokens.device)[None, :] < lengths[:, None]
        sums = (logprobs * mask).sum(dim=1).tolist()
        flat = []
        for row, length, total, done in zip(new_tokens, lengths.tolist(), sums, finished.tolist()):
            text = _cut_at_stop(self.tokenizer.decode(row[:length], skip_special_tokens=True), params.stop)
            flat.append(Completion(text, length, total, "stop" if done else "length"))
        return [flat[i : i + params.n] for i in range(0, len(flat), params.n)]

    def _lengths(self, new_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens generated per row (through the first EOS) and whether generation stopped."""
        is_stop = torch.isin(new_tokens, torch.tensor(self._stop_ids, device=new_tokens.device))
        any_stop = is_stop.any(dim=1)
        first = torch.where(any_stop, is_stop.int().argmax(dim=1) + 1, new_tokens.shape[1])
        pad = self.tokenizer.pad_token_id
        # Stop strings end a row without an EOS: what follows is padding.
        return first, any_stop | (new_tokens[:, -1] == pad)


def _cut_at_stop(text: str, stop: tuple[str, ...]) -> str:
    """Drop the first stop string and what follows, as vLLM does by default."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=len(text))
    return text[:cut]
