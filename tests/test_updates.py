"""Data construction of every update algorithm on hand-made scored rollouts (no model): ReST's
rising thresholds, ReST-EM's K cap, DPO's pairs, GRPO's dropped prompts, replayed seed data."""

from __future__ import annotations

import math

import pytest
from datasets import Dataset

from loop.config import ConfigError, load_config
from policies.engines.config import RolloutConfig
from policies.updates.config import UpdateConfig
from rewards.registry import RewardSpec
from policies.tables import ScoredRollouts
from policies.updates.base import BuildContext
from policies.updates.dpo import DPO, build_pairs
from policies.updates.grpo import GRPO, signal_prompts, trl_totals
from policies.updates.replay import mix_replay
from policies.updates.rest import ReST
from policies.updates.rest_em import ReSTEM

CTX = BuildContext(round=1, sample=lambda prompts, name: pytest.fail("no sampling expected"), render=str)


def scored(rows: list[tuple], **columns) -> ScoredRollouts:
    """Scored rollouts from (prompt_id, completion, reward[, rejected_by]) tuples."""
    return ScoredRollouts.of(Dataset.from_dict({
        "round": [1] * len(rows), "sample_index": list(range(len(rows))),
        "prompt_id": [r[0] for r in rows], "prompt": [f"{r[0]}?" for r in rows],
        "prompt_text": [f"Q:{r[0]}\n" for r in rows], "reference_answer": ["7"] * len(rows),
        "completion": [r[1] for r in rows], "reward": [r[2] for r in rows],
        "rejected_by": [r[3] if len(r) > 3 else "" for r in rows], **columns,
    }))


# --- ReST -----------------------------------------------------------------------------------
def test_rest_keeps_what_clears_the_lowest_bar_and_counts_each_improve_step():
    cfg = UpdateConfig(algorithm="rest", rest={"thresholds": [1.0, 1.5, 2.0]}, max_per_prompt=8)
    rows = [("p", "a", 0.5), ("p", "b", 1.0), ("p", "c", 1.6), ("q", "d", 2.0), ("q", "e", None)]
    examples, metrics = ReST(cfg).build_examples(scored(rows), CTX)
    assert examples["completion"][:] == ["b", "c", "d"]
    assert examples["reward"][:] == [1.0, 1.6, 2.0]  # train() raises the bar with these
    assert [metrics[f"rest/improve_{i}/examples"] for i in range(3)] == [3.0, 2.0, 1.0]


@pytest.mark.parametrize("thresholds", [[], [1.0, 1.0], [2.0, 1.0]])
def test_rest_thresholds_must_be_given_and_rise(thresholds):
    with pytest.raises(ValueError, match="thresholds"):
        UpdateConfig(algorithm="rest", rest={"thresholds": thresholds})


# --- ReST-EM --------------------------------------------------------------------------------
def test_rest_em_keeps_at_most_k_correct_samples_per_problem():
    cfg = UpdateConfig(algorithm="rest_em", threshold=1.0, max_per_prompt=2)
    rows = [("p", "a", 1.0), ("p", "b", 1.0), ("p", "c", 1.0), ("p", "d", 0.0),
            ("q", "e", 1.0), ("q", "f", 0.0), ("r", "g", 0.0)]
    examples, metrics = ReSTEM(cfg).build_examples(scored(rows), CTX)
    assert examples["completion"][:] == ["a", "b", "e"]
    assert metrics["filter/dropped_over_cap"] == 1.0 and metrics["filter/dropped_below_threshold"] == 3.0
    assert metrics["rest_em/prompts_at_cap"] == 1.0


def test_rest_em_retrains_from_the_base_model():
    assert UpdateConfig(algorithm="rest_em").start_from == "base"
    assert UpdateConfig(algorithm="rft").start_from == "previous"
    with pytest.raises(ValueError, match="rest_em retrains from the base model"):
        UpdateConfig(algorithm="rest_em", init="previous")


# --- DPO ------------------------------------------------------------------------------------
def pair_texts(pairs):
    return [(p["prompt_id"], p["chosen"], p["rejected"]) for p in pairs]


def test_dpo_pairs_best_with_worst_and_drops_ties_and_all_equal_prompts():
    rows = [("p", "a", 2.0), ("p", "b", 0.0), ("p", "c", 1.0), ("p", "d", 2.0),  # p: pairs
            ("q", "e", 1.0), ("q", "f", 1.0),  # q: all equal, no preference
            ("r", "g", None), ("r", "h", None)]  # r: nothing scored
    pairs, dropped = build_pairs(scored(rows), "reward", max_pairs=1, min_margin=0.0)
    assert pair_texts(pairs) == [("p", "a", "b")]
    assert pairs[0]["prompt"] == "Q:p\n" and pairs[0]["margin"] == 2.0
    assert dropped == {"all_equal": 1, "unscored": 1}


def test_dpo_pair_cap_distinct_texts_and_margin():
    rows = [("p", "a", 3.0), ("p", "a ", 3.0), ("p", "b", 2.0), ("p", "c", 1.0), ("p", "d", 0.0)]
    pairs, _ = build_pairs(scored(rows), "reward", max_pairs=5, min_margin=0.0)
    assert pair_texts(pairs) == [("p", "a", "d"), ("p", "b", "c")]  # the copy of `a` is not paired
    pairs, _ = build_pairs(scored(rows), "reward", max_pairs=1, min_margin=0.0)
    assert len(pairs) == 1
    pairs, dropped = build_pairs(scored(rows), "reward", max_pairs=5, min_margin=2.0)
    assert pair_texts(pairs) == [("p", "a", "d")]  # b-c differ by 1 <= 2
    pairs, dropped = build_pairs(scored(rows), "reward", max_pairs=5, min_margin=3.0)
    assert pairs == [] and dropped == {"no_margin": 1, "unscored": 0}


def test_dpo_gate_rejects_rank_lowest_and_unscored_samples_sit_out():
    rows = [("p", "good", 1.0), ("p", "loop loop loop", None, "repetition"), ("p", "??", None),
            ("q", "x", 0.0), ("q", "y", None, "length")]
    pairs, _ = build_pairs(scored(rows), "reward", max_pairs=2, min_margin=0.0)
    assert pair_texts(pairs) == [("p", "good", "loop loop loop"), ("q", "x", "y")]


def test_dpo_ranks_by_one_reward_when_asked():
    rows = [("p", "a", 5.0), ("p", "b", 1.0)]
    data = scored(rows, **{"reward/judge": [0.0, 1.0]})
    cfg = UpdateConfig(algorithm="dpo", dpo={"score": "judge"})
    examples, metrics = DPO(cfg).build_examples(data, CTX)
    assert examples.column_names == ["prompt", "chosen", "rejected", "prompt_id"]
    assert (examples["chosen"][0], examples["rejected"][0]) == ("b", "a")  # the judge's order, not the total's
    assert metrics["dpo/pairs"] == 1.0 and metrics["filter/stack/accept_rate"] == 1.0


# --- GRPO -----------------------------------------------------------------------------------
def test_grpo_totals_are_what_trl_sums():
    data = scored([("p", "a", None), ("p", "b", None)], **{"reward/math": [1.0, None], "reward/fmt": [0.5, 1.0]})
    assert trl_totals(data, {"math": 2.0, "fmt": 1.0}) == [2.5, 1.0]


def test_grpo_signal_prompts():
    ids = ["p", "p", "q", "q", "r", "r", "s"]
    assert signal_prompts(ids, [1.0, 0.0, 1.0, 1.0, 0.0, 1e-9, 0.0]) == ["p"]


def test_grpo_drops_all_equal_prompts_and_fills_whole_steps():
    rows = [("p", "a", 1.0), ("p", "b", 0.0), ("q", "c", 0.0), ("q", "d", 0.0),
            ("r", "e", 2.0), ("r", "f", 0.0), ("s", "g", 1.0), ("s", "h", 1.0)]
    data = scored(rows, tests=[f"t-{r[0]}" for r in rows], **{"reward/math": [r[2] for r in rows]})
    cfg = UpdateConfig(algorithm="grpo", grpo={"prompts_per_step": 3})
    algorithm = GRPO(cfg, [RewardSpec(name="math")], RolloutConfig(n=2))
    examples, metrics = algorithm.build_examples(data, CTX)
    assert metrics["grpo/signal_prompts"] == 2.0 and metrics["grpo/dropped_all_equal_prompts"] == 2.0
    assert examples["prompt_id"][:] == ["p", "r", "p"]  # cycled up to one full step of 3 prompts
    assert examples["prompt"][:] == ["Q:p\n", "Q:r\n", "Q:p\n"]  # what the policy sees
    assert set(examples.column_names) == {"prompt_id", "prompt", "problem", "reference_answer", "tests"}
    assert examples["tests"][:2] == ["t-p", "t-r"]  # a prompt's own columns reach the rewards

    keep_all = GRPO(UpdateConfig(algorithm="grpo", grpo={"prompts_per_step": 2, "drop_all_equal": False}),
                    [RewardSpec(name="math")], RolloutConfig(n=2))
    assert keep_all.build_examples(data, CTX)[0]["prompt_id"][:] == ["p", "q", "r", "s"]


# --- replay ---------------------------------------------------------------------------------
def seed_set(n: int) -> Dataset:
    return Dataset.from_dict({"prompt": [f"S{i}" for i in range(n)], "completion": [f"s{i}" for i in range(n)]})


def loop_examples(n: int, **columns) -> Dataset:
    return Dataset.from_dict({"prompt": ["Q"] * n, "completion": [f"c{i}" for i in range(n)],
                              "prompt_id": [f"p{i}" for i in range(n)], **columns})


def test_replay_fraction_is_the_share_of_seed_examples_in_the_mix():
    mixed, n = mix_replay(loop_examples(30), seed_set(100), 0.25, seed=0)
    assert n == 10 and len(mixed) == 40
    assert sum(pid.startswith("seed/") for pid in mixed["prompt_id"][:]) == 10
    assert mix_replay(loop_examples(30), seed_set(100), 0.25, seed=0)[0]["completion"][:] == mixed["completion"][:]
    assert mix_replay(loop_examples(30), seed_set(4), 0.5, seed=0)[1] == 4  # capped at the seed set
    assert mix_replay(loop_examples(0), seed_set(4), 0.5, seed=0)[1] == 0  # nothing to mix into


def test_replayed_examples_clear_every_rest_threshold():
    mixed, n = mix_replay(loop_examples(2, reward=[1.0, 2.0]), seed_set(10), 0.5, seed=1)
    assert n == 2 and mixed["reward"][2:] == [math.inf, math.inf]


# --- config ---------------------------------------------------------------------------------
BAD = [
    (["update.algorithm=dpo", "update.replay_fraction=0.2"], "replay_fraction mixes seed examples into SFT rounds"),
    (["update.algorithm=grpo", "rollout.n=1"], "grpo compares samples of one prompt: set rollout.n >= 2"),
    (["update.algorithm=grpo", "update.grpo.prompts_per_step=3", "rollout.n=3", "update.num_processes=2"],
     "must split evenly over num_processes = 2"),
    (["update.algorithm=dpo", "update.dpo.score=judge"], "update.dpo.score: 'judge' is not a reward of this run"),
    (["update.dpo.loss_weights=[1.0]"], "loss_weights has 1 entries for 2 loss types"),
    (["update.lora.rank=8"], "update.lora.rank: unknown key"),
    (["update.algorithm=grpo", "rewards=[{name: judge, args: {backend: policy}}]"],
     "grpo: a judge with backend: policy needs the loop's engine"),
]


@pytest.mark.parametrize("overrides,message", BAD, ids=[m[:30] for _, m in BAD])
def test_update_config_errors_name_the_field(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_config("configs/demo.yaml", overrides)
