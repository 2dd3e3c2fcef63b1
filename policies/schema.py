"""The tables a round writes, declared once: prompts, rollouts, scored rollouts, training examples.

A prompt row (`PROMPT`) is what the data loader gives the loop; the engine's samples of it add
`SAMPLE` (one row per sample, with provenance); scoring adds `SCORE` plus one `reward/<name>`
and `reason/<name>` column per reward. Any other column of a prompt (a code problem's `tests`)
rides along unchanged to the reward functions. Update algorithms write SFT examples
(`SFT_EXAMPLE`), DPO pairs (`DPO_PAIR`) or GRPO prompts.
"""

from __future__ import annotations

from datasets import Features, Value

PROMPT = Features({
    "prompt_id": Value("string"),
    "prompt": Value("string"),  # the problem as the dataset states it
    "prompt_text": Value("string"),  # what the policy sees: template + chat template applied
    "reference_answer": Value("string"),  # null when there is none (code tests, majority vote)
})
SAMPLE = Features({
    "round": Value("int64"),
    "sample_index": Value("int64"),
    "completion": Value("string"),
    "token_count": Value("int64"),  # generated tokens, EOS included
    "sum_logprob": Value("float64"),  # log-likelihood under the generating policy
    "finish_reason": Value("string"),  # "stop" or "length"
    "generator_id": Value("string"),  # which policy wrote it ("round_003")
})
ROLLOUT = Features({**PROMPT, **SAMPLE})
SCORE = Features({
    "reward": Value("float64"),  # weighted total; null when a gate rejected the sample or none could score
    "rejected_by": Value("string"),  # the gate that rejected it, "" if none
})
REWARD_PREFIX, REASON_PREFIX = "reward/", "reason/"
SFT_EXAMPLE = Features({"prompt": Value("string"), "completion": Value("string"), "prompt_id": Value("string")})
DPO_PAIR = Features({"prompt": Value("string"), "chosen": Value("string"), "rejected": Value("string"),
                     "prompt_id": Value("string")})


# The one acceptance figure every algorithm reports: the share of the round's generated samples
# the update used, after every gate and filter rule. SFT-style: samples kept as examples; DPO:
# samples in a preference pair; GRPO: samples of the prompts it trains on (the trainer samples
# those prompts afresh).
ACCEPT_RATE = "filter/stack/accept_rate"


def is_score_column(name: str) -> bool:
    return name in SCORE or name.startswith((REWARD_PREFIX, REASON_PREFIX))


def prompt_own_columns(columns: list[str]) -> list[str]:
    """The columns of a (scored) rollout table that belong to its prompt, extras included."""
    return [c for c in columns if c not in SAMPLE and not is_score_column(c)]
