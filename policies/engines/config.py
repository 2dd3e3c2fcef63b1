"""The `rollout` section: which engine samples the round's rollouts, and how.

`engine` picks one of four (built by `policies/engines/__init__.py`):

- `hf`: `transformers.generate` in the controller's process (the CPU default).
- `vllm_server`: a pool of `vllm serve` processes (`servers: [urls]`), reloaded in place with
  each round's checkpoint from shared storage. The robust GPU path: vLLM lives in its own
  environment, so its torch/transformers pins never meet ours.
- `vllm`: vLLM's offline `LLM` in this process (needs a vLLM that imports next to our
  transformers); options under `vllm:`.
- `openai`: any OpenAI-compatible completions server as a fixed generator (a teacher); its
  weights never change.
"""

from __future__ import annotations

import importlib.util
from typing import Literal

from pydantic import Field, field_validator, model_validator

from rewards.section import Section

REMOTE = ("vllm_server", "openai")


class VLLMOptions(Section):
    """`LLM(...)` arguments of the in-process `vllm` engine."""

    gpu_memory_utilization: float = Field(0.5, gt=0, le=1, description="Share of GPU memory vLLM may take (training shares the GPU).")
    tensor_parallel_size: int = Field(1, ge=1)
    max_model_len: int | None = Field(None, ge=16, description="Context length; null = the model's.")
    enforce_eager: bool = Field(False, description="Skip CUDA graph capture (faster start, slower decoding).")
    sleep_during_update: bool = Field(True, description="Free vLLM's GPU memory (sleep level 2) while the update trains.")


class ServerOptions(Section):
    """How the remote engines talk to their servers."""

    model: str | None = Field(None, description="Served model name; null = the first of GET /v1/models.")
    api_key_env: str | None = Field(None, description="Environment variable holding the API key, if the server wants one.")
    timeout_s: float = Field(600.0, gt=0, description="Seconds one completion request may take.")
    retries: int = Field(3, ge=0, description="Retries of a request answered 429/5xx before the server is dropped.")
    prompts_per_request: int = Field(16, ge=1, description="Prompts per completion request (each request carries n).")
    in_flight: int = Field(4, ge=1, description="Requests in flight per server (vLLM batches them together).")


class RolloutConfig(Section):
    engine: Literal["hf", "vllm", "vllm_server", "openai"] = Field("hf", description="Rollout engine (see policies/engines/__init__.py).")
    n: int = Field(4, ge=1, description="Samples per prompt.")
    temperature: float = Field(1.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_new_tokens: int = Field(64, ge=1)
    stop: list[str] = []
    batch_size: int = Field(256, ge=1, description="Sequences per generate call.")
    prompts_per_shard: int = Field(64, ge=1, description="Generation resumes at shard granularity.")
    kv_cache: Literal["dynamic", "static"] | None = Field(
        None, description="hf engine (unset: `static`): `static` allocates prompt + max_new_tokens per call once, writes each "
                              "step in place and attends over the positions filled so far (policies/engines/"
                              "kv_cache.py); `dynamic` is transformers' default, which copies the cache every step. "
                              "Models with sliding-window layers always get `dynamic`.")
    servers: list[str] = Field([], description="vllm_server / openai: server URLs, e.g. [http://node1:8000, http://node2:8000].")
    server: ServerOptions = ServerOptions()
    vllm: VLLMOptions = VLLMOptions()

    @field_validator("stop")
    @classmethod
    def _no_empty_stop(cls, stop: list[str]) -> list[str]:
        if any(s == "" for s in stop):
            raise ValueError("an empty stop string ends every completion before it starts (all would be empty); "
                             "remove it, or give the text that ends a completion, e.g. [\"\\n\\n\"]")
        return stop

    @model_validator(mode="after")
    def _engine_options_fit(self) -> "RolloutConfig":
        remote = self.engine in REMOTE
        if remote and not self.servers:
            raise ValueError(f"engine {self.engine} needs servers: a list of URLs such as [http://127.0.0.1:8000]")
        if not remote and self.servers:
            raise ValueError(f"servers is used only by engines {' and '.join(REMOTE)}, not {self.engine}: "
                             f"drop it or set engine: vllm_server")
        if not remote and self.server != ServerOptions():
            raise ValueError(f"server options are used only by engines {' and '.join(REMOTE)}, not {self.engine}")
        if self.engine != "hf" and self.kv_cache == "static":  # (runs saved before the default moved hold `dynamic`)
            raise ValueError(f"kv_cache: {self.kv_cache} is used only by engine hf, not {self.engine}: drop it")
        if self.engine != "vllm" and self.vllm != VLLMOptions():
            raise ValueError(f"vllm options are used only by engine vllm, not {self.engine}")
        bad = [u for u in self.servers if not u.startswith(("http://", "https://"))]
        if bad:
            raise ValueError(f"servers: {bad[0]!r} is not a URL; write http://HOST:PORT")
        if self.engine == "vllm" and importlib.util.find_spec("vllm") is None:
            raise ValueError("engine vllm needs vLLM in this environment (pip install vllm, with a torch and "
                             "transformers it supports); or run `vllm serve` in its own environment and "
                             "use engine: vllm_server")
        return self
