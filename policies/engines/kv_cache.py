"""The `hf` engine's preallocated KV cache: written in place, attended over its filled part.

transformers offers two caches, each paying for something our decode does not need:
`DynamicCache` concatenates every layer's keys and values at every step (a copy of the
whole cache per token: a fifth of a decode step on the CPU demo), and `StaticCache`, built
for `torch.compile`'s fixed shapes, attends over its full length from the first token
(0.74x the dynamic cache when batches stop long before `max_new_tokens`). Nothing here is
compiled, so this cache keeps the static one's in-place writes and hands attention views of
the positions written so far, as the dynamic one would: no copy, no attention to empty slots.
"""

from __future__ import annotations

import torch
from transformers import Cache, PretrainedConfig
from transformers.cache_utils import StaticLayer


class FilledStaticLayer(StaticLayer):
    """A `StaticLayer` that hands attention `keys[:, :, :filled]` (a view) and a mask of that
    length. The fill is a Python int, so no step reads a device tensor back to the host."""

    is_compileable = False  # shapes change every step: never a candidate for generate's auto-compile

    def __init__(self, max_cache_len: int):
        super().__init__(max_cache_len=max_cache_len)
        self.filled = 0

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        start, self.filled = self.filled, self.filled + key_states.shape[-2]
        self.keys[:, :, start:self.filled] = key_states
        self.values[:, :, start:self.filled] = value_states
        return self.keys[:, :, :self.filled], self.values[:, :, :self.filled]

    def get_seq_length(self) -> int:
        return self.filled

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        """As `DynamicLayer`'s: the positions written so far plus this step's."""
        return self.filled + query_length, 0

    def crop(self, max_length: int) -> None:
        """Keep the first `max_length` positions (a negative one counts from the end), as `DynamicLayer`."""
        self.filled = min(self.filled, max_length) if max_length >= 0 else max(self.filled + max_length, 0)

    def reset(self) -> None:
        super().reset()
        self.filled = 0


def preallocated_cache(config: PretrainedConfig, max_cache_len: int) -> Cache | None:
    """A cache of `max_cache_len` positions per layer, or None (`generate` then grows a dynamic
    one) for a model with sliding-window or other layers that are not full attention, whose
    caches follow rules of their own."""
    text = config.get_text_config(decoder=True)
    layer_types = getattr(text, "layer_types", None) or ["full_attention"] * text.num_hidden_layers
    if any(kind != "full_attention" for kind in layer_types):
        return None
    return Cache(layers=[FilledStaticLayer(max_cache_len=max_cache_len) for _ in layer_types])
