"""The `model` section: which policy to start from (a hub id, a local path, or a tiny model
built from config) and how to load it. `policies/loading.py` acts on it."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from rewards.section import Section


class TinyModelConfig(Section):
    """A small model built from a config (no download): a real architecture, few layers."""

    arch: Literal["qwen2", "gpt2", "llama"] = "qwen2"
    num_layers: int = Field(2, ge=1)
    hidden_size: int = Field(128, ge=8)
    num_heads: int = Field(4, ge=1)
    intermediate_size: int = Field(512, ge=8)
    max_position_embeddings: int = Field(256, ge=16)

    @model_validator(mode="after")
    def _heads_split_evenly(self) -> "TinyModelConfig":
        head_dim, rest = divmod(self.hidden_size, self.num_heads)
        rotary = self.arch != "gpt2"  # rotary embeddings rotate pairs of dimensions
        if rest or (rotary and head_dim % 2):
            fit = max(1, round(self.hidden_size / self.num_heads))
            fit += rotary and fit % 2
            even = " into heads of even size (rotary embeddings)" if rotary else ""
            raise ValueError(f"{self.arch} needs hidden_size to split evenly over num_heads{even}, got hidden_size "
                             f"{self.hidden_size} / num_heads {self.num_heads}; e.g. hidden_size {self.num_heads * fit}")
        return self


class ModelConfig(Section):
    name: str | None = Field(None, description="Hugging Face hub id or local path; null builds `tiny`.")
    tiny: TinyModelConfig | None = None
    tokenizer: str | None = Field(None, description="Hub id or path of the tokenizer; defaults to `name` "
                                                     "(a tiny model gets a char tokenizer).")
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "float32"
    chat_template: bool = Field(True, description="Use the tokenizer's chat template when it has one.")

    @model_validator(mode="after")
    def _one_source(self) -> "ModelConfig":
        if self.name is None and self.tiny is None:
            raise ValueError("set `model.name` (hub id or path) or `model.tiny` (a model built from config)")
        if self.tiny is not None and self.tokenizer is not None:
            raise ValueError("tokenizer: a tiny model builds its own char tokenizer; remove model.tokenizer")
        for key in ("name", "tokenizer"):
            value = getattr(self, key)
            if value and _looks_like_path(value) and not Path(value).expanduser().exists():
                raise ValueError(f"{'model' if key == 'name' else key} path {value!r} does not exist; give an existing directory or a hub id")
        return self


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~"))
