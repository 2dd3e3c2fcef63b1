"""The `hf` engine's preallocated KV cache (`policies/engines/kv_cache.py`): written in place,
attended over the positions filled so far. (Same samples as the dynamic cache and as
transformers' own `generate`: tests/test_engine.py.)"""

from __future__ import annotations

import torch
from transformers import Qwen2Config

from policies.engines.kv_cache import FilledStaticLayer, preallocated_cache


def states(tokens: int, value: float) -> torch.Tensor:
    return torch.full((2, 4, tokens, 8), value)  # batch, heads, positions, head dim


def test_attention_gets_views_of_the_filled_positions_only():
    layer = FilledStaticLayer(max_cache_len=16)
    assert layer.get_mask_sizes(3) == (3, 0)  # before the prefill, as a dynamic layer says
    keys, values = layer.update(states(3, 1.0), states(3, -1.0))
    assert keys.shape[2] == values.shape[2] == 3 and layer.get_seq_length() == 3
    assert layer.get_mask_sizes(1) == (4, 0)
    keys, values = layer.update(states(1, 2.0), states(1, -2.0))
    assert keys.shape[2] == 4 and keys.data_ptr() == layer.keys.data_ptr()  # a view of the buffer: no copy
    assert keys[:, :, :3].eq(1.0).all() and keys[:, :, 3].eq(2.0).all() and values[:, :, 3].eq(-2.0).all()
    assert layer.keys.shape[2] == 16 and layer.keys[:, :, 4:].eq(0).all()  # allocated once, at full length


def test_reordering_for_n_samples_keeps_the_fill():
    # The engine fills the prompts once and repeats each prompt's rows for its n samples.
    layer = FilledStaticLayer(max_cache_len=8)
    layer.update(torch.arange(2.0).view(2, 1, 1, 1).expand(2, 1, 3, 1).contiguous(), torch.zeros(2, 1, 3, 1))
    layer.reorder_cache(torch.tensor([0, 0, 1, 1]))
    keys, _ = layer.update(torch.full((4, 1, 1, 1), 9.0), torch.zeros(4, 1, 1, 1))
    assert keys.shape == (4, 1, 4, 1) and keys[:, 0, :3, 0].tolist() == [[0.0] * 3, [0.0] * 3, [1.0] * 3, [1.0] * 3]


def test_models_with_sliding_window_layers_get_the_dynamic_cache():
    full = Qwen2Config(num_hidden_layers=2, hidden_size=32, num_attention_heads=2, num_key_value_heads=2,
                       intermediate_size=64, vocab_size=50)
    cache = preallocated_cache(full, 32)
    assert cache is not None and all(isinstance(layer, FilledStaticLayer) for layer in cache.layers)
    sliding = Qwen2Config(num_hidden_layers=2, hidden_size=32, num_attention_heads=2, num_key_value_heads=2,
                          intermediate_size=64, vocab_size=50, use_sliding_window=True, sliding_window=8,
                          max_window_layers=1)
    assert preallocated_cache(sliding, 32) is None
