"""Where the `judge` reward's judge model runs: an OpenAI-compatible server, or a model the loop
attaches (a local HF model, or the policy itself).

Every backend answers one question, `complete(prompts, max_new_tokens, temperature)`: one
judge answer per judge prompt, in order. A request that failed for reasons outside our code
(HTTP error, timeout, refused connection) comes back as a `BackendFailure` in its slot
instead of text, so one slow request costs one sample's score, not the batch. Mistakes in
the setup (a model backend used before its model was attached) raise.

Backends open clients lazily and never load models themselves (the loop attaches them), so
building a `JudgeReward` to validate a config costs nothing.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

# Statuses worth another try: rate limits and server-side trouble, not our own bad requests.
RETRY_STATUSES = {408, 429, 500, 502, 503, 504}


@dataclass(frozen=True)
class BackendFailure:
    """A judge request that produced no answer; `error` says why (shown as the sample's reason)."""

    error: str


class JudgeBackend(Protocol):
    def complete(self, prompts: list[str], max_new_tokens: int, temperature: float) -> list[str | BackendFailure]:
        """One judge answer per prompt, in order; a failed request is a `BackendFailure`."""
        ...


@dataclass
class OpenAIBackend:
    """A model behind any OpenAI-compatible chat completions endpoint (`vllm serve`, OpenAI, ...).

    `url` is the API base (`http://127.0.0.1:8000/v1`); requests go to `{url}/chat/completions`
    with the judge prompt as one user message. The API key is read from the environment
    variable named `api_key_env` at request time (so it never lands in configs or logs); with
    no variable, or an empty one, no `Authorization` header is sent, as local servers expect.
    Up to `max_concurrency` requests run at once; each gets `timeout_s` seconds and `retries`
    more tries on rate limits, 5xx and network errors, with exponential backoff.
    """

    url: str
    model: str
    api_key_env: str | None = None
    timeout_s: float = 60.0
    max_concurrency: int = 8
    retries: int = 2

    def complete(self, prompts: list[str], max_new_tokens: int, temperature: float) -> list[str | BackendFailure]:
        if not prompts:
            return []
        ask = lambda prompt: self._request_with_retries(prompt, max_new_tokens, temperature)  # noqa: E731
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(prompts))) as pool:
            return list(pool.map(ask, prompts))

    def _request_with_retries(self, prompt: str, max_new_tokens: int, temperature: float) -> str | BackendFailure:
        for attempt in range(self.retries + 1):
            answer, retryable = self._request(prompt, max_new_tokens, temperature)
            if not isinstance(answer, BackendFailure) or not retryable or attempt == self.retries:
                return answer
            time.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable: the last attempt returns")

    def _request(self, prompt: str, max_new_tokens: int, temperature: float) -> tuple[str | BackendFailure, bool]:
        """One HTTP round trip: (answer, whether a failure is worth retrying)."""
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_new_tokens,
            "temperature": temperature,
        }
        request = urllib.request.Request(
            f"{self.url.rstrip('/')}/chat/completions", data=json.dumps(body).encode(), headers=self._headers()
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                payload = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:200]
            hint = f" (is ${self.api_key_env} set?)" if exc.code in (401, 403) and self.api_key_env else ""
            return BackendFailure(f"HTTP {exc.code} from {self.url}{hint}: {detail}"), exc.code in RETRY_STATUSES
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            return BackendFailure(f"request to {self.url} failed: {getattr(exc, 'reason', exc)}"), True
        except ValueError as exc:  # the server answered, but not with JSON
            return BackendFailure(f"unreadable response from {self.url}: {exc}"), False
        return _chat_answer(payload, self.url), False

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env, "") if self.api_key_env else ""
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers


def _chat_answer(payload: Any, url: str) -> str | BackendFailure:
    """The first choice's message text from a chat completions response."""
    try:
        return payload["choices"][0]["message"]["content"] or ""
    except (KeyError, IndexError, TypeError):
        return BackendFailure(f"response from {url} has no choices[0].message.content: {str(payload)[:200]}")


class TextGenerator(Protocol):
    """What a model judge needs of a model: judge prompts in (plain text), one answer each out.

    The model side (`policies/judges.py`) adapts a rollout engine to this: it renders each
    prompt under the model's chat template and samples one completion. `rewards/` never
    imports a model or an engine; it receives one.
    """

    def complete(self, prompts: list[str], max_new_tokens: int, temperature: float) -> list[str]:
        ...


class EngineBackend:
    """A judge that runs on a model the loop hands over: a local model (`backend: hf`) or the
    live policy (`backend: policy`, Self-Rewarding LMs).

    The generator is attached, not copied: a policy judge attached to the rollout engine is the
    current policy after each weight swap. `needs` says which model the loop must attach.
    """

    def __init__(self, needs: str):
        self.needs = needs  # "model" (the judge's own `model`) or "policy" (the rollout engine)
        self.generator: TextGenerator | None = None

    def attach(self, generator: TextGenerator) -> None:
        if not callable(getattr(generator, "complete", None)):
            raise TypeError(f"a judge needs a text generator with .complete(prompts, max_new_tokens, "
                            f"temperature) (see policies/judges.py), got {generator!r}")
        self.generator = generator

    def complete(self, prompts: list[str], max_new_tokens: int, temperature: float) -> list[str | BackendFailure]:
        if self.generator is None:
            what = "the rollout engine" if self.needs == "policy" else "its model"
            raise RuntimeError(f"judge reward with a {self.needs} backend has no model to judge with: attach "
                               f"{what} first (policies.judges.attach_judges(rewards, engine) does this)")
        return list(self.generator.complete(prompts, max_new_tokens, temperature))
