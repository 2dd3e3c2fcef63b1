"""The model side of model judges: build the run's rewards and hand each model judge a model.

`rewards/` never loads a model. A `judge` reward with `backend: hf` or `backend: policy` asks
for a text generator (`JudgeReward.needs_model`); here a rollout engine becomes one: judge
prompts rendered under the model's chat template, one sample each.
"""

from __future__ import annotations

from collections.abc import Callable

from policies.engines.base import RolloutEngine, SamplingParams
from policies.prompts import render_prompt
from rewards import WeightedReward, build_reward
from rewards.registry import RewardSpec


class EngineGenerator:
    """A rollout engine as a judge's `TextGenerator`; `make_engine` runs on first use, so a
    judge model that never gets a sample to judge is never loaded."""

    def __init__(self, make_engine: Callable[[], RolloutEngine], chat_template: bool):
        self._make_engine, self._engine, self.chat_template = make_engine, None, chat_template

    def complete(self, prompts: list[str], max_new_tokens: int, temperature: float) -> list[str]:
        if self._engine is None:
            self._engine = self._make_engine()
        tokenizer = getattr(self._engine, "tokenizer", None)  # none on a remote engine: plain text
        rendered = [render_prompt(tokenizer, p, self.chat_template) for p in prompts]
        params = SamplingParams(n=1, temperature=temperature, max_new_tokens=max_new_tokens)
        return [samples[0].text for samples in self._engine.generate(rendered, params)]


def build_rewards(specs: list[RewardSpec], policy: RolloutEngine | None = None) -> list[WeightedReward]:
    """The run's rewards in config order; model judges get their model attached."""
    rewards = [WeightedReward(s.key, build_reward(s.name, **s.args), s.weight, s.gate) for s in specs]
    attach_judges([r.fn for r in rewards], policy)
    return rewards


def attach_judges(reward_fns: list, policy: RolloutEngine | None) -> None:
    """Give every judge that needs a model its generator: its own model loaded lazily through
    the `hf` engine, or the live `policy` engine (which then judges as the current policy after
    each swap). A policy judge with no policy engine stays unattached and says so when used."""
    for fn in reward_fns:
        needs = getattr(fn, "needs_model", None)
        if needs == "model":
            fn.attach(EngineGenerator(_hf_engine_factory(fn.model, fn.batch_size, fn.dtype), fn.chat_template))
        elif needs == "policy" and policy is not None:
            fn.attach(EngineGenerator(lambda engine=policy: engine, fn.chat_template))


def _hf_engine_factory(model: str, batch_size: int, dtype: str) -> Callable[[], RolloutEngine]:
    def make() -> RolloutEngine:
        from policies.engines.hf import HFEngine  # torch and transformers load only when a judge runs

        return HFEngine(model, generator_id="judge", batch_size=batch_size, dtype=dtype)
    return make
