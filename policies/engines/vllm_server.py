"""The `vllm_server` engine: rollouts from a pool of `vllm serve` processes, reloaded each round.

Start each server in vLLM's own environment, on the same shared storage as the run:

    VLLM_SERVER_DEV_MODE=1 VLLM_ALLOW_RUNTIME_LORA_UPDATING=1 \
        vllm serve <round 0 checkpoint or base model> --port 8000 [--enable-lora]

Weight hand-off after each update: the checkpoint is already on shared storage, so every
server is told to read it in place — `POST /collective_rpc {"method": "reload_weights",
"kwargs": {"weights_path": P}}` — then `POST /reset_prefix_cache` (cached prefixes hold the old
weights' keys and values), `POST /update_weight_version` with the round's generator id, and
`GET /weight_info` must then report that id: a server that did not take the new weights is
dropped, never silently sampled from. A directory holding a peft adapter
(`adapter_config.json`) is loaded with `POST /v1/load_lora_adapter` under a fresh name (vLLM
caches adapters by name) and sampled as that model; the adapter must sit on the weights the
servers hold.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

from policies.engines.base import Completion, SamplingParams
from policies.engines.completions import RemoteSampler, vllm_request
from policies.engines.config import ServerOptions
from policies.engines.server_pool import ServerFailed, ServerPool
from policies.loading import load_tokenizer


class WeightSyncFailed(ServerFailed):
    """A server did not take the new weights: it is dropped like a dead one."""


def pool_from(servers: list[str], options: ServerOptions) -> ServerPool:
    api_key = os.environ.get(options.api_key_env) if options.api_key_env else None
    return ServerPool(servers, api_key=api_key, timeout_s=options.timeout_s, retries=options.retries,
                      in_flight=options.in_flight)


def served_model(pool: ServerPool, options: ServerOptions) -> str:
    """The configured model name, else the first one the first live server lists."""
    if options.model:
        return options.model
    listing = pool.call(pool.live[0], "/v1/models", method="GET")
    return listing["data"][0]["id"]


class VLLMServerEngine:
    def __init__(self, servers: list[str], options: ServerOptions, checkpoint: str | Path, generator_id: str,
                 tokenizer_path: str | Path | None = None):
        self.pool = pool_from(servers, options)
        self.tokenizer = load_tokenizer(tokenizer_path or checkpoint)
        self.base_model = served_model(self.pool, options)
        self.model = self.base_model  # the name requests sample from (an adapter's, on LoRA rounds)
        self.sampler = RemoteSampler(self.pool, vllm_request, options.prompts_per_request)
        self.generator_id = generator_id
        self.load_weights(Path(checkpoint), generator_id)  # the servers may have started from anything

    def generate(self, prompts: list[str], params: SamplingParams) -> list[list[Completion]]:
        return self.sampler.generate(self.model, prompts, params)

    def load_weights(self, checkpoint_dir: Path, generator_id: str) -> None:
        path = str(Path(checkpoint_dir).resolve())  # the servers read it from shared storage
        if (Path(checkpoint_dir) / "adapter_config.json").exists():
            self.model = self._load_adapter(path, generator_id)
        else:
            self.pool.each(lambda url: self._reload(url, path, generator_id))
            self.model = self.base_model
        self.generator_id = generator_id

    def release_memory(self) -> None:
        """Nothing here: the servers' GPUs are not the ones training uses."""

    def _reload(self, url: str, path: str, generator_id: str) -> None:
        call = self.pool.call
        call(url, "/collective_rpc", {"method": "reload_weights", "kwargs": {"weights_path": path}})
        self._reset_prefix_cache(url)
        call(url, "/update_weight_version", {"new_version": generator_id})
        version = call(url, "/weight_info", method="GET").get("weight_version")
        if version != generator_id:
            raise WeightSyncFailed(f"{url} reports weight version {version!r} after loading {generator_id!r} "
                                   f"from {path}")

    def _reset_prefix_cache(self, url: str, tries: int = 10) -> None:
        """Cached prefixes hold the old weights' keys and values. vLLM refuses the reset
        (`success: false`) while blocks are held by running requests: try again shortly."""
        for _ in range(tries):
            if self.pool.call(url, "/reset_prefix_cache").get("success", True):
                return
            time.sleep(0.5)
        raise WeightSyncFailed(f"{url}: the prefix cache could not be reset after {tries} tries")

    def _load_adapter(self, path: str, generator_id: str) -> str:
        name = f"{generator_id}-{uuid.uuid4().hex[:8]}"  # fresh: vLLM keeps an adapter per name
        self.pool.each(lambda url: self.pool.call(url, "/v1/load_lora_adapter", {"lora_name": name, "lora_path": path}))
        return name
