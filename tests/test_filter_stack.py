"""The filter stack: cheap filters (length, repetition, format, majority) as rewards with gates,
run cheapest first, so an expensive reward never sees a sample a cheap one rejected."""

from __future__ import annotations

import math

import pytest

from loop.config import ConfigError, load_config
from rewards import Verdict, WeightedReward, build_reward, score_all, start_scoring
from rewards.filters import LengthReward, MajorityReward, RepetitionReward

DEMO = "configs/demo.yaml"


class ExpensiveJudge:
    """A stand-in for a sandbox or judge (cost 3): records which completions it was shown."""

    __name__ = "expensive"
    cost = 3

    def __init__(self):
        self.seen: list[str] = []

    def __call__(self, prompts, completions, **columns):
        self.seen += completions
        return [0.5] * len(completions)

    def pop_metrics(self):
        return {"calls": float(len(self.seen))}


@pytest.mark.parametrize(
    "text,score",
    [
        pytest.param("The answer is 4.", 1.0, id="normal"),
        pytest.param("the the the the the the the the", 0.0, id="one-word-loop"),
        pytest.param("a b c a b c a b c a b c", 0.0, id="phrase-loop"),
        pytest.param("", 1.0, id="empty-has-no-ngrams"),
        pytest.param("1+2=3\n3+4=7\n7+5=12\nThe answer is 12.", 1.0, id="worked-steps"),
    ],
)
def test_repetition(text, score):
    assert RepetitionReward(n=2, max_share=0.3)(["Q"], [text]) == [score]


def test_length_reads_token_ids_then_token_counts_then_words():
    reward = LengthReward(min_tokens=2, max_tokens=3)
    assert reward(["Q"] * 2, ["x", "x"], completion_ids=[[1, 2], [1, 2, 3, 4]]) == [1.0, 0.0]
    assert reward(["Q"] * 2, ["x", "x"], token_count=[1, 3]) == [0.0, 1.0]
    assert [v.reason for v in reward.verdicts(["Q"] * 2, ["a", "a b c d"])] == [
        "too short: 1 < 2 tokens", "too long: 4 > 3 tokens"]


def test_majority_votes_within_each_prompt_and_normalizes_numbers():
    prompts = ["A"] * 3 + ["B"] * 4 + ["C"] * 2
    completions = ["The answer is 4.", "#### 4.0", "The answer is 5.",  # A: 4 wins 2-1
                   "The answer is 1.", "The answer is 2.", "no answer", "The answer is 1,000.",  # B: tie 1-1-1
                   [{"role": "assistant", "content": "\\boxed{7}"}], "The answer is 7."]  # C: chat format too
    verdicts = MajorityReward().verdicts(prompts, completions)
    assert [v.score for v in verdicts] == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0]
    assert "tie" in verdicts[3].reason and verdicts[5].reason == "no final answer"


def test_majority_min_share():
    completions = ["The answer is 1.", "The answer is 1.", "The answer is 2.", "The answer is 3."]
    assert MajorityReward(min_share=0.5)(["Q"] * 4, completions) == [1.0, 1.0, 0.0, 0.0]
    assert MajorityReward(min_share=0.6)(["Q"] * 4, completions) == [0.0] * 4


def test_gates_run_cheapest_first_and_hide_rejected_samples_from_expensive_rewards():
    judge = ExpensiveJudge()
    rewards = [  # config order puts the expensive one first; cost order must not
        WeightedReward("expensive", judge, 1.0),
        WeightedReward("format", build_reward("format"), 0.0, gate=1.0),
        WeightedReward("repetition", build_reward("repetition", n=2), 0.0, gate=1.0),
    ]
    completions = ["The answer is 4.", "it is 4", "x y x y x y x y The answer is 4.", "So the answer is 5."]
    table = score_all(rewards, ["Q"] * 4, completions)
    assert judge.seen == ["The answer is 4.", "So the answer is 5."]
    assert table.rejected_by == ["", "format", "repetition", ""]
    assert table.total == [0.5, None, None, 0.5]
    assert table.scores["expensive"] == [0.5, None, None, 0.5]
    assert table.reasons["expensive"][1] == "skipped: rejected by format"
    assert table.scores["repetition"][1] is None  # format rejected it before repetition ran
    assert table.gates == {"format": (4, 3), "repetition": (3, 2)}
    assert table.metrics["expensive"] == {"calls": 2.0}


def test_gate_passes_per_sample_columns_for_the_survivors_only():
    seen = {}

    def needs_reference(prompts, completions, reference_answer, trainer_state=None, **columns):
        seen["refs"], seen["state"] = reference_answer, trainer_state
        return [1.0] * len(completions)

    rewards = [WeightedReward("format", build_reward("format"), 0.0, gate=1.0),
               WeightedReward("ref", needs_reference, 1.0)]
    score_all(rewards, ["Q"] * 3, ["The answer is 1.", "no", "The answer is 3."],
              reference_answer=["1", "2", "3"], trainer_state={"step": 7})
    assert seen == {"refs": ["1", "3"], "state": {"step": 7}}


class CountingMath:
    """The real math reward, counting the samples it is shown (a verdict is a function of the
    sample: it declares `sample_columns`)."""

    __name__ = "counted_math"
    cost = 1
    sample_columns = ("reference_answer",)

    def __init__(self):
        self.shown = 0
        self.math = build_reward("math")

    def verdicts(self, prompts, completions, **columns):
        self.shown += len(completions)
        return self.math.verdicts(prompts, completions, **columns)


def test_a_sample_the_reward_saw_in_this_call_is_judged_once_with_the_same_verdict():
    # Same prompt, completion and reference: one verdict for both. A different reference, prompt
    # or completion is another sample.
    prompts = ["Q1", "Q1", "Q1", "Q2", "Q1", "Q1"]
    completions = ["The answer is 4.", "The answer is 4.", "The answer is 5.", "The answer is 4.",
                   "The answer is 4.", "The answer is 4."]
    references = ["4", "4", "4", "4", "5", "4"]
    counted = CountingMath()
    table = score_all([WeightedReward("math", counted, 1.0)], prompts, completions, reference_answer=references)
    plain = score_all([WeightedReward("math", build_reward("math"), 1.0)], prompts, completions,
                      reference_answer=references)
    assert counted.shown == 4  # rows 1 and 5 repeat row 0
    assert table.scores == plain.scores and table.reasons == plain.reasons
    assert table.scores["math"] == [1.0, 1.0, 0.0, 1.0, 0.0, 1.0]


def test_only_rewards_that_declare_their_columns_share_verdicts_and_unhashable_samples_never_do():
    judge = ExpensiveJudge()  # no `sample_columns`: it may read anything (a judge, a sandbox)
    score_all([WeightedReward("expensive", judge, 1.0)], ["Q"] * 3, ["same"] * 3)
    assert judge.seen == ["same"] * 3
    counted = CountingMath()
    chat = [[{"role": "assistant", "content": "The answer is 4."}]] * 3  # lists: not hashable
    table = score_all([WeightedReward("math", counted, 1.0)], ["Q"] * 3, chat, reference_answer=["4"] * 3)
    assert counted.shown == 3 and table.scores["math"] == [1.0] * 3


def test_length_reads_token_counts_so_equal_texts_of_different_lengths_stay_apart():
    length = WeightedReward("length", LengthReward(min_tokens=3), 0.0, gate=1.0)
    table = score_all([length], ["Q"] * 3, ["same text"] * 3, token_count=[2, 5, 2])
    assert table.scores["length"] == [0.0, 1.0, 0.0] and table.rejected_by == ["length", "", "length"]


class StartedAhead:
    """A user reward whose checks run elsewhere (`start_verdicts`), logging when it starts and finishes."""

    __name__ = "ahead"
    cost = 1

    def __init__(self, log: list):
        self.log = log

    def start_verdicts(self, prompts, completions, **columns):
        self.log.append(("start", list(completions)))

        def finish():
            self.log.append(("finish", list(completions)))
            return [Verdict(1.0 if "4" in c else 0.0, "checked elsewhere") for c in completions]

        return finish


class Logged:
    __name__ = "logged"
    cost = 2

    def __init__(self, log: list):
        self.log = log

    def __call__(self, prompts, completions, **columns):
        self.log.append(("judge", list(completions)))
        return [0.5] * len(completions)


def test_a_reward_started_ahead_finishes_after_the_later_rewards_unless_its_gate_decides_what_they_see():
    completions = ["The answer is 4.", "The answer is 5."]
    log: list = []
    rewards = [WeightedReward("logged", Logged(log), 1.0), WeightedReward("ahead", StartedAhead(log), 1.0)]
    finish = start_scoring(rewards, ["Q"] * 2, completions)
    assert [event for event, _ in log] == ["start", "judge"]  # the later reward judged meanwhile
    table = finish()
    assert [event for event, _ in log] == ["start", "judge", "finish"]
    assert list(table.scores) == ["ahead", "logged"]  # cheapest first, as `score_all` orders them
    assert table.total == [1.5, 0.5] and table.reasons["ahead"] == ["checked elsewhere"] * 2
    assert table == score_all(rewards, ["Q"] * 2, completions)

    log.clear()  # with a gate, the later reward must see only its survivors: finished first
    gated = [WeightedReward("logged", Logged(log), 1.0), WeightedReward("ahead", StartedAhead(log), 1.0, gate=1.0)]
    table = start_scoring(gated, ["Q"] * 2, completions)()
    assert log == [("start", completions), ("finish", completions), ("judge", completions[:1])]
    assert table.total == [1.5, None] and table.rejected_by == ["", "ahead"]


def test_everything_rejected_leaves_no_reward_call():
    judge = ExpensiveJudge()
    rewards = [WeightedReward("length", LengthReward(min_tokens=5), 0.0, gate=1.0),
               WeightedReward("expensive", judge, 1.0)]
    table = score_all(rewards, ["Q"] * 2, ["a", "b"])
    assert judge.seen == [] and table.total == [None, None]


def test_config_builds_rewards_with_their_args_and_names_the_bad_one():
    with pytest.raises(ConfigError, match=r"rewards\.0\.args: .*repetition reward: need n >= 1"):
        load_config(DEMO, ["rewards=[{name: repetition, args: {n: 0}}]"])
    with pytest.raises(ConfigError, match=r"rewards\.0\.args: .*bad arguments"):
        load_config(DEMO, ["rewards=[{name: length, args: {max_token: 3}}]"])


def test_config_rejects_duplicate_rewards_without_labels_and_unknown_eval_verifier():
    with pytest.raises(ConfigError, match="appears twice; give one a `label`"):
        load_config(DEMO, ["rewards=[{name: math}, {name: math}]"])
    cfg = load_config(DEMO, ["rewards=[{name: math}, {name: math, label: math_strict, args: {timeout_s: 1}}]"])
    assert [r.key for r in cfg.rewards] == ["math", "math_strict"]
    with pytest.raises(ConfigError, match="eval.verifier: 'judge2'"):
        load_config(DEMO, ["eval.verifier=judge2"])


def test_filter_stack_metrics_in_a_scored_rollout_table():
    from datasets import Dataset

    from loop.scoring import score

    rollouts = Dataset.from_dict({
        "prompt_text": ["Q"] * 4, "completion": ["The answer is 4.", "4", "The answer is 3.", "The answer is 4."],
        "reference_answer": ["4"] * 4, "token_count": [5, 1, 5, 5], "finish_reason": ["stop"] * 4,
        "sum_logprob": [-1.0] * 4, "prompt_id": ["p"] * 4,
    })
    rewards = [WeightedReward("format", build_reward("format"), 0.0, gate=1.0),
               WeightedReward("math", build_reward("math"), 1.0)]
    scored, metrics = score(rollouts, rewards)
    assert scored["rejected_by"][:] == ["", "format", "", ""]
    assert scored["reward"][:] == [1.0, None, 0.0, 1.0]
    assert metrics["filter/format/accept_rate"] == 0.75
    assert metrics["filter/gates/accept_rate"] == 0.75
    assert math.isclose(metrics["reward/math/mean"], 2 / 3)
