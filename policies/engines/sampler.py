"""The `hf` engine's draw of the next token: inverse CDF, one uniform number per row.

`generate(do_sample=True)` draws with `torch.multinomial`, which on the CPU makes an
exponential variate for every vocabulary entry of every row: 7% of a decode step on the demo
(vocabulary 100), and 1.38 s per step at 256 rows x 151,936 entries, against 0.13 s for the
draw here (bench/README.md). The distribution is the same: with `c` the running sum of the
probabilities and `u` uniform in [0, c_last), the token is the first whose `c` exceeds `u`,
which happens with exactly its probability; a token of probability 0 owns an empty interval
and is never drawn. The engine runs `generate` greedily with this processor last in the
list: it leaves only the drawn token finite, so greedy's argmax takes it.
"""

from __future__ import annotations

import torch
from transformers import LogitsProcessor, LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper


class InverseCDFSampler(LogitsProcessor):
    """Temperature, then top-p (transformers' own warpers, in `generate`'s order), then one draw."""

    def __init__(self, temperature: float, top_p: float):
        self.warpers = LogitsProcessorList(
            ([TemperatureLogitsWarper(temperature)] if temperature != 1.0 else [])
            + ([TopPLogitsWarper(top_p)] if top_p < 1.0 else []))

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        probs = torch.softmax(self.warpers(input_ids, scores).float(), dim=-1)
        cumulative = probs.cumsum(dim=-1, dtype=torch.float64)  # float64: the last sum stays exact enough
        u = torch.rand(probs.shape[0], 1, dtype=torch.float64, device=probs.device) * cumulative[:, -1:]
        token = torch.searchsorted(cumulative, u, right=True).clamp_(max=probs.shape[-1] - 1)
        return torch.full_like(scores, float("-inf")).scatter_(1, token, 0.0)
