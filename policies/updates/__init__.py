"""Update algorithms, one module each, chosen by `update.algorithm`."""

from loop.config import UpdateConfig
from policies.updates.base import BuildContext, UpdateAlgorithm
from policies.updates.rft import RFT
from policies.updates.star import STaR

ALGORITHMS = {"rft": RFT, "star": STaR}


def build_algorithm(cfg: UpdateConfig) -> UpdateAlgorithm:
    return ALGORITHMS[cfg.algorithm](cfg)


__all__ = ["ALGORITHMS", "BuildContext", "UpdateAlgorithm", "build_algorithm"]
