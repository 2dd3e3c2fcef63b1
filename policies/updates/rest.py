"""ReST (Gulcehre et al. 2023): one Grow step, then several Improve steps on its samples.

Grow is the round's generation. Improve step i fine-tunes, starting from step i-1's policy, on
the samples whose reward reaches `rest.thresholds[i]`: a rising bar, so later steps train on
ever fewer, ever better samples. Meant for graded rewards (partial credit, a judge's score).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

from datasets import Dataset

from policies.atomic import atomic_dir, save_parquet
from policies.updates.config import UpdateConfig
from policies.launch import train
from policies.training import TrainJob, TrainResult
from policies.tables import ScoredRollouts, read_parquet
from policies.updates.base import BuildContext
from policies.updates.rft import filter_metrics, select_accepted


class ReST:
    name = "rest"

    def __init__(self, cfg: UpdateConfig):
        self.cfg = cfg
        self.thresholds = cfg.rest.thresholds

    def build_examples(self, scored: ScoredRollouts, ctx: BuildContext) -> tuple[Dataset, dict[str, float]]:
        """Everything that clears the lowest bar, with its reward; `train` raises the bar."""
        cfg = self.cfg
        kept, dropped = select_accepted(scored, self.thresholds[0], cfg.max_per_prompt, cfg.dedup, cfg.difficulty)
        metrics = filter_metrics(scored, kept, dropped)
        examples = scored.take(kept, ["prompt_text", "completion", "prompt_id", "reward"])
        rewards = examples["reward"][:]
        for i, bar in enumerate(self.thresholds):
            metrics[f"rest/improve_{i}/examples"] = float(sum(reward >= bar for reward in rewards))
        return examples.rename_column("prompt_text", "prompt"), metrics

    def train(self, job: TrainJob, num_processes: int, callbacks: tuple = ()) -> TrainResult:
        """The Improve steps, each resumable in its own directory; the last one's policy is the round's."""
        examples = read_parquet(job.dataset_path)
        out, model, steps, losses = Path(job.output_dir), job.model_path, 0, []
        for i, bar in enumerate(self.thresholds):
            step_dir = out / f"improve_{i}"
            subset = examples.filter(lambda row: row["reward"] >= bar).remove_columns("reward")
            if len(subset) == 0:
                continue
            data = step_dir / "examples.parquet"
            if not data.exists():
                save_parquet(subset, data)
            last = i == len(self.thresholds) - 1
            step_job = replace(job, model_path=model, dataset_path=str(data), output_dir=str(step_dir / "trainer"),
                               final_dir=job.final_dir if last else str(step_dir / "policy"),
                               adapter_dir=job.adapter_dir if last else str(step_dir / "adapter"))
            result = _done(step_job) or train(step_job, num_processes, callbacks)
            model, steps = step_job.final_dir, steps + result.steps
            losses.append(result.train_loss)
        if model != job.final_dir:  # the top bar kept nothing: the last trained step is the policy
            _copy_policy(Path(model), Path(job.final_dir))
        return TrainResult(steps=steps, train_loss=sum(losses) / max(len(losses), 1), examples=len(examples))


def _done(job: TrainJob) -> TrainResult | None:
    """A finished Improve step (its result and policy on disk) is not trained again on resume."""
    result = Path(job.output_dir) / "result.json"
    if result.exists() and Path(job.final_dir).exists():
        return TrainResult(**json.loads(result.read_text()))
    return None


def _copy_policy(src: Path, dst: Path) -> None:
    with atomic_dir(dst) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
