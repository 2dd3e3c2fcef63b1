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

    def __init__(self, responder: Responder, api_key: str | None = None, model: str = "test-model"):
        self.responder = responder
        self.api_key = api_key
        self.model = model
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> "OpenAITestServer":
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True  # a request still sleeping at shutdown must not block exit
        # A short poll interval: `shutdown` waits for the serving loop's next poll.
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)


def _handler_for(server: OpenAITestServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
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
