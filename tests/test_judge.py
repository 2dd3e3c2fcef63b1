"""Tests for the `judge` reward (`rewards/judge.py`, `judge_backends.py`, `judge_length.py`).

Parsing and length control on hand-made judge answers; the `openai` backend over real HTTP
against a local OpenAI-compatible test server (`tests/openai_server.py`) answering from a
script or from a tiny Qwen2; the `hf` and `policy` backends on that tiny Qwen2, whose random
verdicts are noise: there the plumbing is what is checked. CPU only.
"""

from __future__ import annotations

import doctest
import importlib
import math
import re
import socket
import time

import pytest
from openai_server import OpenAITestServer, hf_responder

from policies.engines.base import SamplingParams
from policies.engines.hf import HFEngine
from policies.judges import attach_judges
from rewards.judge import JudgeReward, PairVerdict
from rewards.judge_backends import OpenAIBackend
from rewards.judge_length import LengthControl, pearson

# Short rubrics keep judge prompts inside the tiny model's 256 positions, and tagged ones let a
# scripted judge find what it is shown.
POINTWISE = "<q>{prompt}</q><a>{completion}</a>"
PAIRWISE = "<q>{prompt}</q><A>{a}</A><B>{b}</B>"
TINY_RUBRIC = "Q:{prompt} A:{completion} S:"


def shown(tag: str, judge_prompt: str) -> str:
    return re.search(f"<{tag}>(.*?)</{tag}>", judge_prompt, re.DOTALL).group(1)


def openai_judge(server: OpenAITestServer, **args) -> JudgeReward:
    defaults = dict(backend="openai", url=server.url, model="judge-test", max_new_tokens=32)
    return JudgeReward(**{**defaults, **args})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- parsing --------------------------------------------------------------------------------

SCORE_CASES = [
    ("Score: 8", 7 / 9),
    ("Clear and correct.\nScore: 10", 1.0),
    ("score = 1", 0.0),
    ("**Score:** 7", 6 / 9),
    ("Score: 5.5", 4.5 / 9),
    ("Score: 1 would be harsh; it is fine.\nScore: 9", 8 / 9),  # the last verdict counts
    ("Score: 15", 1.0),  # above the scale: clipped
    ("Score: 0", 0.0),  # below the scale: clipped
    ("Score: -3", 0.0),
    ("", None),
    ("I think the answer is good.", None),
    ("Score: ten", None),
    ("Rating: 8", None),
]


@pytest.mark.parametrize("answer,expected", SCORE_CASES)
def test_parse_score(answer, expected):
    judge = JudgeReward(backend="policy")
    assert judge.parse_score(answer) == (None if expected is None else pytest.approx(expected))


WINNER_CASES = [
    ("Winner: A", None, "A"),
    ("B is more precise.\nwinner: b", None, "B"),
    ("Winner: [B]", None, "B"),
    ("**Winner:** A", None, "A"),
    ("Winner: A? No. Winner: B", None, "B"),
    ("Both are fine.", None, None),
    ("Winner: C", None, None),
    ("Better: 2", r"Better:\s*([12])", "B"),
    ("Better: 1", r"Better:\s*([12])", "A"),
]


@pytest.mark.parametrize("answer,pattern,expected", WINNER_CASES)
def test_parse_winner(answer, pattern, expected):
    assert JudgeReward(backend="policy", mode="pairwise", pattern=pattern).parse_winner(answer) == expected


def test_custom_pattern_and_scale():
    judge = JudgeReward(backend="policy", pattern=r"\[\[(\d+)\]\]", scale=[0, 5])
    assert judge.parse_score("Rating: [[4]]") == pytest.approx(0.8)
    assert judge.parse_score("Score: 4") is None


# --- pointwise over HTTP (scripted judge) ---------------------------------------------------


def length_judge(prompt: str, body: dict) -> str:
    """Likes long answers, cannot read the ones saying 'garbage'."""
    answer = shown("a", prompt)
    if "garbage" in answer:
        return "I cannot rate this."
    return f"Looks thorough.\nScore: {8 if len(answer) > 20 else 3}"


def test_pointwise_over_http_counts_and_sends_key(monkeypatch):
    monkeypatch.setenv("JUDGE_TEST_KEY", "sk-local")
    completions = ["A long and detailed answer of 4.", "4", "garbage", [{"role": "assistant", "content": "Four."}]]
    with OpenAITestServer(length_judge, api_key="sk-local") as server:
        judge = openai_judge(server, rubric=POINTWISE, api_key_env="JUDGE_TEST_KEY", temperature=0.3)
        verdicts = judge.verdicts(["2+2?"] * 4, completions, reference_answer=["4"] * 4)
    assert [v.score for v in verdicts] == [pytest.approx(7 / 9), pytest.approx(2 / 9), None, pytest.approx(2 / 9)]
    assert verdicts[0].reason == "judge: Looks thorough.\nScore: 8"
    assert verdicts[2].reason.startswith("unparseable judge answer: I cannot rate")
    assert len(server.requests) == 4
    for request in server.requests:
        assert request.path == "/v1/chat/completions"
        assert request.headers["Authorization"] == "Bearer sk-local"
        assert request.body["model"] == "judge-test"
        assert request.body["max_tokens"] == 32 and request.body["temperature"] == 0.3
    metrics = judge.pop_metrics()
    assert metrics["calls"] == 4 and metrics["unparseable"] == 1 and metrics["errors"] == 0
    assert metrics["unparseable_rate"] == pytest.approx(0.25)
    assert metrics["length_corr"] > 0.9  # long answers score high
    assert "position_flip_rate" not in metrics
    after = judge.pop_metrics()
    assert after["calls"] == 0 and math.isnan(after["length_corr"])


def test_judge_reads_raw_problem_and_message_prompts():
    """The loop's `prompt` column (the raw problem) is shown, not the chat-rendered prompt."""
    with OpenAITestServer(lambda prompt, body: "Score: 5") as server:
        judge = openai_judge(server, rubric=POINTWISE)
        judge(["<|user|>What is 2+2?<|assistant|>"], ["4"], prompt=["What is 2+2?"])
        judge([[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "3+3?"}]], ["6"])
        judge(["{a} and {completion} in math: {x}"], ["{prompt}"])
    shown_problems = [shown("q", r.body["messages"][-1]["content"]) for r in server.requests]
    assert shown_problems == ["What is 2+2?", "3+3?", "{a} and {completion} in math: {x}"]
    assert shown("a", server.requests[2].body["messages"][-1]["content"]) == "{prompt}"  # never refilled


def test_backend_errors_become_none_with_reason():
    with OpenAITestServer(lambda prompt, body: "Score: 9", api_key="sk-right") as server:
        wrong_key = openai_judge(server, api_key_env="JUDGE_TEST_UNSET_KEY", retries=0)
        verdicts = wrong_key.verdicts(["Q"], ["A"])
    assert verdicts[0].score is None
    assert "HTTP 401" in verdicts[0].reason and "$JUDGE_TEST_UNSET_KEY" in verdicts[0].reason
    assert wrong_key.pop_metrics()["errors"] == 1
    unreachable = JudgeReward(backend="openai", url=f"http://127.0.0.1:{free_port()}/v1", model="m", retries=0)
    verdict = unreachable.verdicts(["Q"], ["A"])[0]
    assert verdict.score is None and "request to" in verdict.reason


def test_timeout_and_retry():
    def slow(prompt: str, body: dict) -> str:
        time.sleep(1.0)
        return "Score: 9"

    with OpenAITestServer(slow) as server:
        verdict = openai_judge(server, timeout_s=0.2, retries=0).verdicts(["Q"], ["A"])[0]
    assert verdict.score is None and "timed out" in verdict.reason
    statuses = iter([503, "Score: 10"])
    with OpenAITestServer(lambda prompt, body: next(statuses)) as server:
        assert openai_judge(server, retries=1)(["Q"], ["A"]) == [1.0]
    assert len(server.requests) == 2


def test_completions_endpoint_and_models_route():
    """The server's other routes answer as vLLM's do (for clients that use them)."""
    import json
    import urllib.request

    with OpenAITestServer(lambda prompt, body: prompt.upper(), model="m") as server:
        with urllib.request.urlopen(f"{server.url}/models") as response:
            assert json.load(response)["data"][0]["id"] == "m"
        request = urllib.request.Request(f"{server.url}/completions", data=json.dumps({"prompt": "hi"}).encode())
        with urllib.request.urlopen(request) as response:
            assert json.load(response)["choices"][0]["text"] == "HI"


# --- length control -------------------------------------------------------------------------


def test_length_normalize_removes_trend_but_reports_raw_corr():
    judged = {1: 2, 3: 3, 4: 7, 7: 6, 9: 9}  # length -> score: longer mostly scores higher

    def by_length(prompt: str, body: dict) -> str:
        return f"Score: {judged[len(shown('a', prompt))]}"

    completions = ["x" * n for n in judged]
    raw = [(score - 1) / 9 for score in judged.values()]
    with OpenAITestServer(by_length) as server:
        judge = openai_judge(server, rubric=POINTWISE, length={"mode": "normalize"})
        scores = judge(["Q"] * 5, completions)
    assert pearson(list(zip(scores, judged))) == pytest.approx(0.0, abs=1e-9)
    assert sum(scores) / 5 == pytest.approx(sum(raw) / 5)  # the batch mean is kept
    assert judge.pop_metrics()["length_corr"] == pytest.approx(pearson(list(zip(raw, judged))))
    assert pearson(list(zip(raw, judged))) > 0.8


def test_length_penalty():
    control = LengthControl.from_args({"mode": "penalty", "coef": 0.2, "target": 10})
    assert control.apply([1.0, 1.0, 1.0, None], [5, 10, 30, 50]) == [1.0, 1.0, pytest.approx(0.6), None]
    assert LengthControl.from_args(None).apply([0.3, None], [1, 2]) == [0.3, None]


# --- pairwise over HTTP ---------------------------------------------------------------------


def always_a(prompt: str, body: dict) -> str:
    return "Both fine, the first reads better.\nWinner: A"


def prefers_longer(prompt: str, body: dict) -> str:
    return "Winner: A" if len(shown("A", prompt)) >= len(shown("B", prompt)) else "Winner: B"


def test_position_biased_judge_flips_every_pair():
    completions = ["a", "bb", "ccc", "d", "ee", "fff"]
    with OpenAITestServer(always_a) as server:
        judge = openai_judge(server, mode="pairwise", rubric=PAIRWISE)
        scores = judge(["P1"] * 3 + ["P2"] * 3, completions)
        pair = judge.compare("P1", "short", "a longer answer")
    assert scores == [0.5] * 6
    assert pair == PairVerdict(0.5, True, pair.reason) and pair.winner is None
    metrics = judge.pop_metrics()
    assert metrics["position_flip_rate"] == 1.0
    assert metrics["calls"] == 2 * (3 + 3 + 1)  # 3 pairs per prompt, one compare; both orders each


def test_consistent_judge_ranks_by_win_rate():
    completions = ["mid answer", "s", "the longest answer", "x", "yy"]
    prompts = ["P1", "P1", "P1", "P2", "P2"]
    with OpenAITestServer(prefers_longer) as server:
        judge = openai_judge(server, mode="pairwise", rubric=PAIRWISE)
        verdicts = judge.verdicts(prompts, completions)
        pair = judge.compare([{"role": "user", "content": "P1"}], "a long answer",
                             [{"role": "assistant", "content": "s"}])
    assert [v.score for v in verdicts] == [0.5, 0.0, 1.0, 0.0, 1.0]
    assert verdicts[2].reason.startswith("won 2 of 2 comparisons")
    assert pair.score == 1.0 and pair.flipped is False and pair.winner == "a"
    first_shown = [shown("A", r.body["messages"][-1]["content"]) for r in server.requests[-2:]]
    assert sorted(first_shown) == ["a long answer", "s"]  # both orders were asked
    assert judge.pop_metrics()["position_flip_rate"] == 0.0


def test_pairwise_caps_pairs_and_skips_lone_prompts():
    with OpenAITestServer(prefers_longer) as server:
        judge = openai_judge(server, mode="pairwise", rubric=PAIRWISE, max_pairs_per_prompt=3)
        verdicts = judge.verdicts(["P"] * 5 + ["alone"], ["a", "bb", "ccc", "dddd", "eeeee", "f"])
    assert len(server.requests) == 2 * 3
    assert verdicts[5].score is None and "no other sample" in verdicts[5].reason
    compared = [v for v in verdicts[:5] if v.score is not None]
    assert len(compared) == 5  # the cap spreads comparisons over all samples


def test_pairwise_unreadable_and_compare_needs_pairwise():
    with OpenAITestServer(lambda prompt, body: "They are equally good.") as server:
        judge = openai_judge(server, mode="pairwise", rubric=PAIRWISE)
        assert judge(["P", "P"], ["a", "b"]) == [None, None]
        assert judge.compare("P", "a", "b") == PairVerdict(None, None, judge.compare("P", "a", "b").reason)
    metrics = judge.pop_metrics()
    assert metrics["unparseable"] == metrics["calls"] == 6 and math.isnan(metrics["position_flip_rate"])
    with pytest.raises(ValueError, match="mode='pairwise'"):
        JudgeReward(backend="policy").compare("P", "a", "b")


# --- tiny local models: hf and policy backends, and behind the server -------------------------


@pytest.fixture(scope="module")
def engine(tiny_model_dir) -> HFEngine:
    return HFEngine(tiny_model_dir, "round_000", batch_size=16, device="cpu")


def check_noise_plumbing(judge: JudgeReward, verdicts: list, calls: int) -> None:
    """Random-model verdicts: every sample scored or None for a reason, and counted."""
    for verdict in verdicts:
        assert verdict.score is None or 0.0 <= verdict.score <= 1.0
        assert verdict.reason
    metrics = judge.pop_metrics()
    assert metrics["calls"] == calls and metrics["errors"] == 0
    if judge.mode == "pointwise":
        assert metrics["unparseable"] == sum(v.score is None for v in verdicts)


PROBLEMS, ANSWERS = ["1+1?", "1+1?", "2+5?", "9-3?"], ["2", "It is 2.", "7", "five"]


def test_hf_backend_tiny_model(tiny_model_dir):
    judge = JudgeReward(backend="hf", model=str(tiny_model_dir), rubric=TINY_RUBRIC, pattern=r"(\d)",
                        scale=[0, 9], max_new_tokens=8)
    assert judge.needs_model == "model"
    with pytest.raises(RuntimeError, match="attach"):  # rewards/ never loads a model itself
        judge(PROBLEMS, ANSWERS)
    attach_judges([judge], policy=None)
    assert judge.backend.generator._engine is None  # nothing loaded until first use
    verdicts = judge.verdicts(PROBLEMS, ANSWERS)
    check_noise_plumbing(judge, verdicts, calls=4)


def test_policy_backend_needs_attach_then_judges(engine):
    judge = JudgeReward(backend="policy", rubric=TINY_RUBRIC, pattern=r"(\d)", scale=[0, 9], max_new_tokens=8)
    attach_judges([judge], policy=None)  # no policy engine yet: stays unattached
    with pytest.raises(RuntimeError, match="rollout engine"):
        judge(PROBLEMS, ANSWERS)
    with pytest.raises(TypeError, match="text generator"):
        judge.attach(object())
    attach_judges([judge], policy=engine)
    check_noise_plumbing(judge, judge.verdicts(PROBLEMS, ANSWERS), calls=4)
    pairwise = JudgeReward(backend="policy", mode="pairwise", rubric="Q:{prompt} A:{a} B:{b} W:",
                           pattern=r"([AB12])", max_new_tokens=8)
    attach_judges([pairwise], policy=engine)
    check_noise_plumbing(pairwise, pairwise.verdicts(PROBLEMS, ANSWERS), calls=2)  # one pair, both orders


def test_openai_backend_with_tiny_model_behind_server(tiny_model_dir, engine):
    with OpenAITestServer(hf_responder(tiny_model_dir)) as server:
        backend = OpenAIBackend(server.url, "tiny")
        answers = backend.complete(["Q:1+1? A:2 S:", "Q:2+5? A:7 S:"], 8, 0.0)
        judge = openai_judge(server, rubric=TINY_RUBRIC, pattern=r"(\d)", scale=[0, 9], max_new_tokens=8)
        verdicts = judge.verdicts(PROBLEMS, ANSWERS)
    greedy = SamplingParams(n=1, temperature=0.0, max_new_tokens=8)
    assert answers == [c[0].text for c in engine.generate(["Q:1+1? A:2 S:", "Q:2+5? A:7 S:"], greedy)]
    check_noise_plumbing(judge, verdicts, calls=4)


# --- constructor ----------------------------------------------------------------------------

BAD_ARGS = [
    ({}, "backend must be one of"),
    ({"backend": "vllm"}, "backend must be one of"),
    ({"backend": "openai", "model": "m"}, "needs url"),
    ({"backend": "openai", "url": "localhost:8000", "model": "m"}, "needs url"),
    ({"backend": "openai", "url": "http://x/v1"}, "needs model"),
    ({"backend": "openai", "url": "http://x/v1/chat/completions", "model": "m"}, "without the endpoint"),
    ({"backend": "hf"}, "needs model"),
    ({"backend": "policy", "mode": "listwise"}, "mode must be"),
    ({"backend": "policy", "rubric": "Rate: {completion}"}, r"add \{prompt\}"),
    ({"backend": "policy", "mode": "pairwise", "rubric": "{prompt} {a}"}, r"add \{b\}"),
    ({"backend": "policy", "mode": "pairwise", "rubric": POINTWISE}, r"add \{a\}, \{b\}"),
    ({"backend": "policy", "pattern": r"Score: \d+"}, "capture group"),
    ({"backend": "policy", "pattern": "Score: ("}, "invalid regular expression"),
    ({"backend": "policy", "scale": [10, 1]}, "lo < hi"),
    ({"backend": "policy", "scale": [1]}, "scale must be"),
    ({"backend": "policy", "max_new_tokens": 0}, "max_new_tokens must be"),
    ({"backend": "policy", "max_pairs_per_prompt": 0}, "max_pairs_per_prompt must be"),
    ({"backend": "policy", "temperature": -1}, "temperature"),
    ({"backend": "hf", "model": "m", "dtype": "fp8"}, "dtype must be"),
    ({"backend": "policy", "length": {"mode": "cut"}}, "length.mode must be"),
    ({"backend": "policy", "length": {"mode": "penalty"}}, "needs length.target"),
    ({"backend": "policy", "length": {"mode": "penalty", "target": 10, "coef": -1}}, "length.coef"),
    ({"backend": "policy", "length": {"modes": "none"}}, "unknown key"),
]


@pytest.mark.parametrize("args,message", BAD_ARGS)
def test_constructor_rejects_bad_args(args, message):
    with pytest.raises(ValueError, match=message):
        JudgeReward(**args)


def test_constructor_is_cheap_and_names_itself():
    start = time.perf_counter()
    judge = JudgeReward(backend="openai", url=f"http://127.0.0.1:{free_port()}/v1", model="m")  # no server there
    JudgeReward(backend="hf", model="/no/such/model")  # not loaded until used
    assert time.perf_counter() - start < 0.5
    assert judge.__name__ == "judge" and JudgeReward.cost == 3
    attach_judges([judge], policy=object())  # an openai judge brings its own model
    assert judge.needs_model is None
    with pytest.raises(TypeError, match="brings its own model"):
        judge.attach(object())


@pytest.mark.parametrize("module_name", ["rewards.judge", "rewards.judge_length"])
def test_docstring_examples_run(module_name):
    result = doctest.testmod(importlib.import_module(module_name))
    assert result.attempted > 0 and result.failed == 0
