"""Mix real (seed) examples into a round's training set so the loop does not drift away from
human data: `update.replay_fraction` is their share of the mix."""

from __future__ import annotations

import random

from datasets import Dataset, concatenate_datasets


def mix_replay(examples: Dataset, seed_examples: Dataset, fraction: float, seed: int) -> tuple[Dataset, int]:
    """`examples` plus seed examples making up `fraction` of the result (capped at the seed set's
    size, drawn without replacement); returns the mix and how many seed examples it holds."""
    if fraction <= 0 or len(examples) == 0:
        return examples, 0
    wanted = round(fraction / (1 - fraction) * len(examples))
    rows = sorted(random.Random(seed).sample(range(len(seed_examples)), min(wanted, len(seed_examples))))
    picked = seed_examples.select(rows)
    replay = {"prompt": picked["prompt"][:], "completion": picked["completion"][:],
              "prompt_id": [f"seed/{i}" for i in rows]}
    if "reward" in examples.column_names:  # ReST's Improve steps keep real data at every threshold
        replay["reward"] = [float("inf")] * len(rows)
    replay_ds = Dataset.from_dict(replay).cast(examples.select_columns(list(replay)).features)
    return concatenate_datasets([examples, replay_ds]), len(rows)
