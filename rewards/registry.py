"""Turn a reward's name from a config into a callable.

Built-in rewards live in one explicit dict, so the full list is readable here and adding
one is a one-line change; user rewards are named by dotted import path, the same
convention as TRL's `scripts/grpo.py`. Nothing registers itself on import.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from typing import Any

from pydantic import Field, ValidationInfo, field_validator

from rewards.code import CodeReward
from rewards.filters import LengthReward, MajorityReward, RepetitionReward
from rewards.format import FormatReward
from rewards.judge import JudgeReward
from rewards.math import MathReward
from rewards.section import Section
from rewards.steps import StepsReward

BUILTIN_REWARDS: dict[str, Callable[..., Callable]] = {
    "math": MathReward,
    "format": FormatReward,
    "steps": StepsReward,
    "length": LengthReward,
    "repetition": RepetitionReward,
    "majority": MajorityReward,
    "code": CodeReward,
    "judge": JudgeReward,
}


def reward_names() -> list[str]:
    """Names of the built-in rewards, sorted."""
    return sorted(BUILTIN_REWARDS)


def build_reward(name: str, **args: Any) -> Callable:
    """Return the reward called `name`, configured with `args`.

    `name` is a built-in (see `reward_names()`) or the import path of a user function,
    `package.module:function` or `package.module.function`. A user function with `args`
    is wrapped in `functools.partial`, keeping its `__name__` for TRL's logs.

    >>> build_reward("format").__name__
    'format'
    >>> build_reward("operator:add", b=1).__name__
    'add'
    """
    if name in BUILTIN_REWARDS:
        try:
            return BUILTIN_REWARDS[name](**args)
        except TypeError as exc:  # a misspelt option: say which reward it was meant for
            raise ValueError(f"reward {name!r}: bad arguments {args}: {exc}") from exc
    if "." not in name and ":" not in name:
        raise ValueError(_unknown(name, "it is neither a built-in nor a dotted import path"))
    function = _import_function(name)
    if not args:
        return function
    configured = functools.partial(function, **args)
    configured.__name__ = getattr(function, "__name__", name)  # partials accept attributes
    return configured


def _import_function(path: str) -> Callable:
    """Import `package.module:function` or `package.module.function`."""
    if ":" in path:
        module_name, _, attribute = path.partition(":")
    else:
        module_name, _, attribute = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(_unknown(path, f"cannot import module {module_name!r}: {exc}")) from exc
    function = module
    for part in attribute.split("."):  # "module:Class.method" reaches into the module
        function = getattr(function, part, None)
        if function is None:
            raise ValueError(_unknown(path, f"module {module_name!r} has no attribute {attribute!r}"))
    if not callable(function):
        raise ValueError(_unknown(path, f"{attribute!r} in {module_name!r} is not callable"))
    return function


def _unknown(name: str, why: str) -> str:
    return (
        f"unknown reward {name!r}: {why}. Built-in rewards: {', '.join(reward_names())}. "
        "For your own reward, give its import path as 'package.module:function' "
        "(or 'package.module.function'); it must accept (prompts, completions, **columns) "
        "and return one float or None per completion."
    )


class RewardSpec(Section):
    """One entry of the run's `rewards` list: which reward, its weight, arguments and gate."""

    name: str
    weight: float = 1.0
    args: dict[str, Any] = {}
    gate: float | None = Field(None, description="Reject samples scoring below this here: a filter stage.")
    label: str | None = Field(None, description="Name in metrics; defaults to `name` (needed when one reward appears twice).")

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        if name not in BUILTIN_REWARDS:
            build_reward(name)  # imports a user's function; raises with the list of built-ins
        return name

    @field_validator("args")
    @classmethod
    def _buildable(cls, args: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        # Building a reward is cheap by contract (models, clients and worker processes start on
        # first use), so building one here turns a bad argument or a missing API key into a
        # config error before round 1.
        if "name" in info.data:
            build_reward(info.data["name"], **args)
        return args

    @property
    def key(self) -> str:
        return self.label or self.name
