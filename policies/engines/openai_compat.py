"""The `openai` engine: any OpenAI-compatible completions server as a fixed generator.

A teacher (a larger model behind vLLM, SGLang, TGI, llama.cpp, ...) writes the rollouts; the
loop's updates train a student on them. Its weights are not ours: `load_weights` leaves the
server alone, keeps the teacher's `generator_id`, and says so once. Prompts are rendered with
the local tokenizer (`model.tokenizer`, else the checkpoint's), so serve a model that shares
its chat template. Requests carry only OpenAI's own fields (see `completions.openai_request`).
"""

from __future__ import annotations

import logging
from pathlib import Path

from policies.engines.base import Completion, SamplingParams
from policies.engines.completions import RemoteSampler, openai_request
from policies.engines.config import ServerOptions
from policies.engines.vllm_server import pool_from, served_model
from policies.loading import load_tokenizer

log = logging.getLogger(__name__)


class OpenAIEngine:
    def __init__(self, servers: list[str], options: ServerOptions, tokenizer_path: str | Path):
        self.pool = pool_from(servers, options)
        self.tokenizer = load_tokenizer(tokenizer_path)
        self.model = served_model(self.pool, options)
        self.generator_id = f"openai:{self.model}"
        self.sampler = RemoteSampler(self.pool, openai_request, options.prompts_per_request)
        self._warned = False

    def generate(self, prompts: list[str], params: SamplingParams) -> list[list[Completion]]:
        return self.sampler.generate(self.model, prompts, params)

    def release_memory(self) -> None:
        """Nothing here: the server's memory is not ours."""

    def load_weights(self, checkpoint_dir: Path, generator_id: str) -> None:
        """A fixed generator: nothing is loaded, and rollouts keep naming the teacher."""
        if not self._warned:
            log.warning("rollout.engine=openai serves the fixed model %r: %s (and every later checkpoint) "
                        "is not loaded into it; rollouts stay %r", self.model, checkpoint_dir, self.generator_id)
            self._warned = True
