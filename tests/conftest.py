"""Shared fixtures: a tiny Qwen2 built from config (no download) and its char tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest

from policies.model_config import ModelConfig, TinyModelConfig

TINY = ModelConfig(tiny=TinyModelConfig(num_layers=1, hidden_size=32, num_heads=2, intermediate_size=64))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A 1-layer Qwen2 with random weights, saved like any `from_pretrained` directory."""
    from policies.loading import build_tiny

    return build_tiny(TINY, seed=0, out_dir=tmp_path_factory.mktemp("tiny") / "model")
