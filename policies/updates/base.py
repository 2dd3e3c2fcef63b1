"""What an update algorithm is: scored rollouts in, training examples out, then an update.

The controller calls `build_examples` in the `filter` phase and `train` in the `train` phase;
it knows nothing else about the algorithm. `BuildContext.sample` lets an algorithm ask for more
rollouts (STaR's rationalization) through the controller's resumable, seeded generator.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

from datasets import Dataset

from policies.tables import ScoredRollouts
from policies.training import TrainJob, TrainResult


@dataclass
class BuildContext:
    round: int
    # sample(prompts, name) -> scored rollouts; `prompts` has prompt_id, prompt, prompt_text,
    # reference_answer; `name` names the sub-directory its shards resume from.
    sample: Callable[[Dataset, str], ScoredRollouts]
    render: Callable[[str], str]  # problem text -> the text the policy sees
    policy: Any = None  # the live policy as a text generator (`complete(prompts, max_new_tokens, temperature)`)
    out_dir: Path | None = None  # the round's directory, for an algorithm's own per-sample records


class UpdateAlgorithm(Protocol):
    name: str

    def build_examples(self, scored: ScoredRollouts, ctx: BuildContext) -> tuple[Dataset, dict[str, float]]:
        """The trainer's examples (SFT `prompt`/`completion`, DPO pairs, GRPO prompts) and the filter's metrics."""
        ...

    def train(self, job: TrainJob, num_processes: int, callbacks: tuple = ()) -> TrainResult:
        """Update the policy: `job.model_path` in, `job.final_dir` out."""
        ...
