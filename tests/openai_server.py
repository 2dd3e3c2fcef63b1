"""A local OpenAI-compatible HTTP server for tests: real sockets, scripted or tiny-model answers.

It fakes only the OpenAI service (what `vllm serve` exposes): `POST /v1/chat/completions`,
`POST /v1/completions` and `GET /v1/models`, on 127.0.0.1 at a free port, in a thread. What
it answers comes from a responder the test passes in: a scripted function, or `hf_responder`,
which generates with a real (tiny) Hugging Face model. Every request is recorded, headers
included, so tests can check what the client sent.

    with OpenAITestServer(lambda prompt, body: "Score: 7") as server:
        JudgeReward(backend="openai", url=server.url, model="m")(["Q"], ["A"])
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# Gets the prompt text (for chat requests, the last message's content) and the request body;
# returns the answer, or an int to reply with that HTTP status instead.
Responder = Callable[[str, dict], "str | int"]


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: dict


class OpenAITestServer:
    """Serve `responder`'s answers over HTTP while the `with` block runs; `url` is the API base.

    With `api_key`, requests without `Authorization: Bearer <api_key>` get a 401, as OpenAI does.
    """

    def __init__(self, responder: Responder | None = None, api_key: str | None = None, model: str = "test-model",
                 backend: "VLLMStandIn | None" = None, port: int = 0):
        self.responder = responder
        self.port = port  # 0 = a free one
        self.backend = backend
        self.api_key = api_key
        self.model = backend.base_name if backend is not None else model
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    url: str = ""  # the API base, set while serving (and kept after a kill)

    def __enter__(self) -> "OpenAITestServer":
        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), _handler_for(self))
        host, port = self._httpd.server_address[:2]
        self.url = f"http://{host}:{port}/v1"
        self._httpd.daemon_threads = True  # a request still sleeping at shutdown must not block exit
        # A short poll interval: `shutdown` waits for the serving loop's next poll.
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.kill()

    def kill(self) -> None:
        """Stop serving: later connections are refused, as to a dead server."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)
            self._httpd = None

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)


def _handler_for(server: OpenAITestServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            server.record(RecordedRequest(self.path, dict(self.headers.items()), {}))
            if server.backend is not None and self.path != "/v1/models":
                return self._reply(*server.backend.handle("GET", self.path, {}))
            if self.path.rstrip("/") != "/v1/models":
                return self._reply(404, {"error": {"message": f"no route {self.path}"}})
            self._reply(200, {"object": "list", "data": [{"id": server.model, "object": "model"}]})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                return self._reply(400, {"error": {"message": "body is not JSON"}})
            server.record(RecordedRequest(self.path, dict(self.headers.items()), body))
            if server.api_key and self.headers.get("Authorization") != f"Bearer {server.api_key}":
                return self._reply(401, {"error": {"message": "Incorrect API key provided"}})
            if server.backend is not None and self.path != "/v1/chat/completions":
                answer = server.backend.handle("POST", self.path, body)
                if answer is None:  # the stand-in died mid-request: no reply at all
                    self.close_connection = True
                    threading.Thread(target=server.kill, daemon=True).start()
                    return
                return self._reply(*answer)
            if self.path == "/v1/chat/completions":
                prompt, chat = str(body.get("messages", [{}])[-1].get("content", "")), True
            elif self.path == "/v1/completions":
                prompt, chat = str(body.get("prompt", "")), False
            else:
                return self._reply(404, {"error": {"message": f"no route {self.path}"}})
            try:
                answer = server.responder(prompt, body)
            except Exception as exc:  # a broken responder answers 500, as a crashing server would
                return self._reply(500, {"error": {"message": f"responder failed: {exc!r}"}})
            if isinstance(answer, int):
                return self._reply(answer, {"error": {"message": f"scripted status {answer}"}})
            self._reply(200, _completion_payload(answer, server.model, chat))

        def _reply(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args) -> None:  # keep pytest output clean
            pass

    return Handler


def _completion_payload(answer: str, model: str, chat: bool) -> dict:
    choice = {"index": 0, "finish_reason": "stop"}
    if chat:
        choice["message"] = {"role": "assistant", "content": answer}
    else:
        choice["text"] = answer
    return {
        "id": "cmpl-test",
        "object": "chat.completion" if chat else "text_completion",
        "model": model,
        "choices": [choice],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


def hf_responder(model_dir: str | Path) -> Responder:
    """Answer with real generations of the model in `model_dir` (loaded once, on CPU).

    Chat requests go through the tokenizer's chat template when it has one, as vLLM does.
    Requests are served one at a time: one model, one generate call at once.
    """
    from policies.engines.base import SamplingParams
    from policies.engines.hf import HFEngine
    from policies.prompts import render_prompt

    engine = HFEngine(model_dir, "served", batch_size=8, device="cpu")
    lock = threading.Lock()

    def respond(prompt: str, body: dict) -> str:
        text = render_prompt(engine.tokenizer, prompt) if "messages" in body else prompt
        params = SamplingParams(n=1, temperature=float(body.get("temperature", 1.0)),
                                max_new_tokens=int(body.get("max_tokens") or 16))
        with lock:
            return engine.generate([text], params)[0][0].text

    return respond


class VLLMStandIn:
    """The routes of `vllm serve` (VLLM_SERVER_DEV_MODE=1) that the `vllm_server` engine uses,
    answered by a real tiny HF model: a stand-in for vLLM, which cannot run on a CPU.

    - `POST /v1/completions`: a list of prompts, `n` samples each, seeded by `seed`; greedy
      with n > 1 is refused (HTTP 400) as vLLM does. HFEngine reports a sample's total
      log-prob and length, not per token: `token_logprobs` spreads the total evenly and
      `token_ids` has the right count (their count and sum are all the client reads).
    - `POST /collective_rpc {"method": "reload_weights", "kwargs": {"weights_path": P}}`: a
      real in-place weight swap. `/reset_prefix_cache`, `/update_weight_version`,
      `GET /weight_info` as vLLM answers them.
    - `POST /v1/load_lora_adapter`: the peft adapter merged onto a copy of the current weights,
      served under its name.

    `die_after=k`: after k completion requests the next one gets no reply and the server
    stops (a server killed mid-round). `fail_first=k`: the first k completion requests get a
    503 (an overloaded server that recovers).
    """

    # One request at a time across all stand-ins of the process: seeding uses torch's global RNG.
    lock = threading.Lock()

    def __init__(self, model_dir: str | Path, served_name: str = "served", die_after: int | None = None,
                 fail_first: int = 0):
        from policies.engines.hf import HFEngine

        self.engines = {served_name: HFEngine(model_dir, "served", batch_size=64, device="cpu")}
        self.base_name = served_name
        self.weights_path = str(model_dir)
        self.version = "default"
        self.die_after = die_after
        self.fail_first = fail_first
        self.completions = 0
        self.reloads: list[str] = []

    def handle(self, method: str, path: str, body: dict) -> tuple[int, dict] | None:
        route = path.split("?")[0]
        with self.lock:
            if (method, route) == ("POST", "/v1/completions"):
                return self._complete(body)
            if (method, route) == ("POST", "/collective_rpc"):
                return self._collective_rpc(body)
            if (method, route) == ("POST", "/reset_prefix_cache"):
                return 200, {"success": True}
            if (method, route) == ("POST", "/update_weight_version"):
                self.version = body["new_version"]
                return 200, {"success": True, "new_version": self.version}
            if (method, route) == ("GET", "/weight_info"):
                return 200, {"weight_version": self.version}
            if (method, route) == ("POST", "/v1/load_lora_adapter"):
                return self._load_adapter(body)
        return 404, {"error": {"message": f"no route {method} {path}"}}

    def _complete(self, body: dict) -> tuple[int, dict] | None:
        import torch

        from policies.engines.base import SamplingParams

        self.completions += 1
        if self.die_after is not None and self.completions > self.die_after:
            return None
        if self.completions <= self.fail_first:
            return 503, {"error": {"message": "overloaded"}}
        engine = self.engines.get(body["model"])
        if engine is None:
            return 404, {"error": {"message": f"model {body['model']!r} does not exist"}}
        n, temperature = body.get("n", 1), body.get("temperature", 1.0)
        if temperature == 0 and n > 1:
            return 400, {"error": {"message": f"n must be 1 when using greedy sampling, got {n}."}}
        prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        params = SamplingParams(n=n, temperature=temperature, top_p=body.get("top_p", 1.0),
                                max_new_tokens=body["max_tokens"], stop=tuple(body.get("stop") or ()))
        if body.get("seed") is not None:
            torch.manual_seed(body["seed"])
        rows = engine.generate(prompts, params)
        choices = []
        for c in (c for row in rows for c in row):
            ids = engine.tokenizer(c.text, add_special_tokens=False)["input_ids"][: c.token_count]
            choices.append({
                "index": len(choices), "text": c.text, "finish_reason": c.finish_reason,
                "token_ids": ids + [engine.tokenizer.eos_token_id] * (c.token_count - len(ids)),
                "logprobs": {"tokens": [], "token_logprobs": [c.sum_logprob / c.token_count] * c.token_count,
                             "top_logprobs": [], "text_offset": []},
            })
        return 200, {"id": "cmpl-standin", "object": "text_completion", "model": body["model"], "choices": choices}

    def _collective_rpc(self, body: dict) -> tuple[int, dict]:
        from policies.checkpoint import swap_weights

        if body.get("method") != "reload_weights":
            return 400, {"error": {"message": f"the stand-in knows only reload_weights, not {body.get('method')!r}"}}
        path = body["kwargs"]["weights_path"]
        try:
            swap_weights(self.engines[self.base_name].model, Path(path))
        except (OSError, ValueError) as exc:
            return 500, {"error": {"message": repr(exc)}}
        self.weights_path = path
        self.reloads.append(path)
        return 200, {"results": [None]}

    def _load_adapter(self, body: dict) -> tuple[int, dict]:
        from peft import PeftModel

        from policies.engines.hf import HFEngine

        name, path = body["lora_name"], body["lora_path"]
        if name in self.engines:
            return 400, {"error": {"message": f"The lora adapter '{name}' has already been loaded."}}
        engine = HFEngine(self.weights_path, name, batch_size=64, device="cpu")
        engine.model.load_state_dict(self.engines[self.base_name].model.state_dict())
        engine.model = PeftModel.from_pretrained(engine.model, path).merge_and_unload()
        self.engines[name] = engine
        return 200, {"text": f"Success: LoRA adapter '{name}' added successfully."}


def main() -> None:
    """Serve a `VLLMStandIn` in its own process until killed (bench/demo_vllm_server.sh):

        python tests/openai_server.py MODEL_DIR --port 8000

    One process per server: a process serves one request at a time, as one GPU would."""
    import argparse
    import time

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("model_dir", help="the weights it starts from (reloaded by the engine)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--served-name", default="served")
    args = parser.parse_args()
    with OpenAITestServer(backend=VLLMStandIn(args.model_dir, args.served_name), port=args.port) as server:
        print(f"serving {args.model_dir} at {server.url}", flush=True)
        while True:
            time.sleep(3600)


if __name__ == "__main__":
    main()
