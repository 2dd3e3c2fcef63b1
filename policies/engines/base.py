"""What a rollout engine is: sampling parameters in, completions out, weights swappable.

Engines (`hf`, `vllm`, `vllm_server`, `openai`) implement `RolloutEngine` structurally; the controller knows nothing
else about them, and they know nothing of rounds or resume.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class SamplingParams:
    n: int = 1
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0
    max_new_tokens: int = 64
    stop: tuple[str, ...] = field(default_factory=tuple)
    seed: int | None = None  # engines that seed per request (vLLM); the hf engine uses torch's global seed


@dataclass(frozen=True)
class Completion:
    text: str
    token_count: int  # generated tokens, EOS included
    sum_logprob: float  # under the policy at temperature 1 (natural log)
    finish_reason: str  # "stop" (EOS or stop string) or "length"


class RolloutEngine(Protocol):
    generator_id: str  # which policy is loaded (e.g. "round_003"); stored with every rollout
    tokenizer: Any  # the policy's tokenizer: prompts are rendered with its chat template

    def generate(self, prompts: list[str], params: SamplingParams) -> list[list[Completion]]:
        """`params.n` completions for each rendered prompt, in prompt order."""
        ...

    def load_weights(self, checkpoint_dir: Path, generator_id: str) -> None:
        """Swap the policy's weights in place for those saved in `checkpoint_dir`."""
        ...

    def release_memory(self) -> None:
        """Free the accelerator memory this engine holds, because training is about to need it.
        The next `load_weights` (or `generate`) brings the policy back. A no-op for engines
        whose memory training does not share (hf, remote servers)."""
        ...
