"""A pool of HTTP inference servers: work spread over them, failures absorbed.

`map` hands jobs (shards of prompts) to whichever server is free, a few requests in flight per
server. A request answered 429/5xx is retried with backoff; a server that stays broken, or
stops answering at all, is dropped for the rest of the run and its unfinished jobs are redone
on the others. Only when no server is left does the pool give up. `each` runs one action on
every server (a weight reload) and drops the ones it fails on, so no server keeps serving
stale weights.

Standard library HTTP (`urllib`), as the judge's client: no extra dependency.
"""

from __future__ import annotations

import http.client
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)

RETRY_STATUSES = {429, 500, 502, 503, 504}  # server-side trouble, worth another try
Job = TypeVar("Job")
Result = TypeVar("Result")


class ServerFailed(RuntimeError):
    """This server is unusable: unreachable, or still failing after the retries."""


class RequestRejected(RuntimeError):
    """The server refused the request itself (4xx): our bug or bad config, not the server's."""


class NoServersLeft(RuntimeError):
    pass


def base_url(url: str) -> str:
    """`http://host:8000/v1/` -> `http://host:8000`: routes are added per call."""
    url = url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


class ServerPool:
    def __init__(self, urls: list[str], api_key: str | None = None, timeout_s: float = 600.0,
                 retries: int = 3, in_flight: int = 4, backoff_s: float = 0.5):
        self.live = list(dict.fromkeys(base_url(u) for u in urls))
        self.dropped: dict[str, str] = {}  # url -> why it was dropped
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.retries = retries
        self.in_flight = in_flight
        self.backoff_s = backoff_s
        self._lock = threading.Lock()

    def call(self, url: str, route: str, body: dict | None = None, method: str = "POST") -> Any:
        """One request with retries on 429/5xx; the decoded JSON answer ({} for an empty one)."""
        for attempt in range(self.retries + 1):
            try:
                return self._request(url + route, body, method)
            except urllib.error.HTTPError as exc:
                detail = exc.read().decode(errors="replace")[:300]
                if exc.code not in RETRY_STATUSES:
                    raise RequestRejected(f"{url}{route}: HTTP {exc.code}: {detail}") from exc
                log.warning("%s%s: HTTP %d (try %d of %d): %s", url, route, exc.code, attempt + 1,
                            self.retries + 1, detail)
            except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as exc:
                raise ServerFailed(f"{url}{route}: {exc}") from exc
            time.sleep(self.backoff_s * 2**attempt)
        raise ServerFailed(f"{url}{route}: still failing after {self.retries + 1} tries")

    def _request(self, url: str, body: dict | None, method: str) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            raw = response.read()
        try:
            return json.loads(raw) if raw.strip() else {}
        except ValueError:  # some routes answer plain text (vLLM's /v1/load_lora_adapter)
            return {"text": raw.decode(errors="replace")}

    def drop(self, url: str, reason: str) -> None:
        with self._lock:
            if url in self.live:
                self.live.remove(url)
                self.dropped[url] = reason
                log.warning("dropping server %s (%s); %d left", url, reason, len(self.live))

    def each(self, action: Callable[[str], None]) -> None:
        """Run `action(url)` on every live server at once; drop those it fails on."""
        def run(url: str) -> None:
            try:
                action(url)
            except ServerFailed as exc:
                self.drop(url, str(exc))

        threads = [threading.Thread(target=run, args=(url,), daemon=True) for url in list(self.live)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if not self.live:
            raise NoServersLeft(f"no server left: {self.dropped}")

    def map(self, jobs: list[Job], work: Callable[[str, Job], Result]) -> list[Result]:
        """`[work(url, job) for job in jobs]`, spread over the live servers, in job order."""
        results: list[Any] = [None] * len(jobs)
        pending: queue.Queue[int] = queue.Queue()
        for i in range(len(jobs)):
            pending.put(i)
        state = {"left": len(jobs), "error": None}
        finished = threading.Event()
        if not jobs:
            return []

        def serve(url: str) -> None:
            while not finished.is_set() and url in self.live:
                try:
                    i = pending.get(timeout=0.05)
                except queue.Empty:
                    continue
                try:
                    results[i] = work(url, jobs[i])
                except ServerFailed as exc:
                    pending.put(i)  # redone by a server still alive
                    self.drop(url, str(exc))
                    return
                except BaseException as exc:  # our own error: stop everything and re-raise it
                    state["error"] = exc
                    finished.set()
                    return
                with self._lock:
                    state["left"] -= 1
                    if state["left"] == 0:
                        finished.set()

        threads = [threading.Thread(target=serve, args=(url,), daemon=True)
                   for url in list(self.live) for _ in range(self.in_flight)]
        for t in threads:
            t.start()
        while not finished.wait(0.1):
            if not any(t.is_alive() for t in threads):
                finished.set()
                raise NoServersLeft(f"no server left with {state['left']} of {len(jobs)} requests unfinished: "
                                    f"{self.dropped}")
        for t in threads:
            t.join()
        if state["error"] is not None:
            raise state["error"]
        return results
