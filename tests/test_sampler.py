"""The `hf` engine's next-token draw (`policies/engines/sampler.py`): the distribution that
`generate`'s temperature, top-p and multinomial would give, from one uniform per row.
(Log-probs of the drawn samples equal teacher-forced ones, and the whole vocabulary is
reachable: tests/test_engine.py.)"""

from __future__ import annotations

import math

import pytest
import torch

from policies.engines.sampler import InverseCDFSampler

LOGITS = torch.tensor([2.0, 1.0, float("-inf"), 0.5, -1.0, 0.0])
DRAWS = 200_000


def frequencies(temperature: float, top_p: float) -> torch.Tensor:
    torch.manual_seed(0)
    out = InverseCDFSampler(temperature, top_p)(torch.zeros(DRAWS, 1, dtype=torch.long), LOGITS.repeat(DRAWS, 1))
    assert (out == 0).sum(dim=1).eq(1).all() and torch.isinf(out).sum(dim=1).eq(LOGITS.numel() - 1).all()
    return torch.bincount(out.argmax(dim=1), minlength=LOGITS.numel()) / DRAWS


def nucleus(probs: list[float], top_p: float) -> list[float]:
    """Top-p by hand: the most likely tokens until their mass reaches top_p, renormalised."""
    order, kept, mass = sorted(range(len(probs)), key=lambda i: -probs[i]), set(), 0.0
    for i in order:
        kept.add(i)
        mass += probs[i]
        if mass >= top_p:
            break
    return [probs[i] / mass if i in kept else 0.0 for i in range(len(probs))]


@pytest.mark.parametrize("temperature, top_p", [(1.0, 1.0), (0.5, 1.0), (1.0, 0.7), (1.5, 0.9)])
def test_draws_follow_the_warped_softmax(temperature, top_p):
    weights = [math.exp(x / temperature) if math.isfinite(x) else 0.0 for x in LOGITS.tolist()]
    expected = nucleus([w / sum(weights) for w in weights], top_p)
    observed = frequencies(temperature, top_p)
    for p, f in zip(expected, observed.tolist()):
        assert f == pytest.approx(p, abs=4 * math.sqrt(p * (1 - p) / DRAWS) + 1e-9)  # 4 sigma
        assert (p == 0) == (f == 0)  # a token of probability 0 is never drawn, every other one is
