"""The update algorithms by name, and the one place that builds them."""

from policies.engines.config import RolloutConfig
from policies.updates.config import UpdateConfig
from rewards.registry import RewardSpec
from policies.schema import ACCEPT_RATE
from policies.updates.base import BuildContext, UpdateAlgorithm
from policies.updates.cai import CAI
from policies.updates.dpo import DPO
from policies.updates.gkd import GKD
from policies.updates.grpo import GRPO
from policies.updates.rest import ReST
from policies.updates.rest_em import ReSTEM
from policies.updates.rft import RFT
from policies.updates.star import STaR

ALGORITHMS = {"rft": RFT, "star": STaR, "rest": ReST, "rest_em": ReSTEM, "dpo": DPO, "grpo": GRPO, "gkd": GKD, "cai": CAI}


def build_algorithm(cfg: UpdateConfig, rewards: list[RewardSpec], rollout: RolloutConfig) -> UpdateAlgorithm:
    if cfg.algorithm == "grpo":  # the only one that scores its own samples, while it trains
        return GRPO(cfg, rewards, rollout)
    return ALGORITHMS[cfg.algorithm](cfg)


__all__ = ["ACCEPT_RATE", "ALGORITHMS", "BuildContext", "UpdateAlgorithm", "build_algorithm"]
