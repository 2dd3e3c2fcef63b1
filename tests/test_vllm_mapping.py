"""Our sampling parameters and completions against vLLM's own classes (vllm 0.33.0), imported
from `.vllm_site` (see tests/vllm_site.py; skipped without it)."""

from __future__ import annotations

import pytest

from policies.engines.base import SamplingParams
from policies.engines.completions import openai_request, parse_completions, vllm_request
from policies.engines.vllm import completions_from, vllm_sampling_params
from vllm_site import import_vllm

vllm = import_vllm()
from vllm.entrypoints.openai.completion.protocol import CompletionRequest, CompletionResponse  # noqa: E402

CASES = [
    SamplingParams(n=4, temperature=1.0, top_p=1.0, max_new_tokens=64),
    SamplingParams(n=8, temperature=0.7, top_p=0.95, max_new_tokens=512, stop=("\n\n", "Q:"), seed=123),
    SamplingParams(n=1, temperature=0.0, max_new_tokens=1, seed=0),
]
# What a Qwen2.5-Instruct generation_config would supply for every field a request leaves out.
SERVER_DEFAULTS = {"temperature": 0.7, "top_p": 0.8, "top_k": 20, "repetition_penalty": 1.05, "min_p": 0.1}


@pytest.mark.parametrize("params", CASES)
def test_our_params_build_a_valid_vllm_sampling_params(params):
    built = vllm_sampling_params(params)  # vLLM validates on construction
    assert (built.n, built.temperature, built.top_p, built.max_tokens) == (
        params.n, params.temperature, params.top_p, params.max_new_tokens)
    assert (built.stop, built.seed, built.logprobs, built.top_k) == (list(params.stop), params.seed, 0, 0)


def test_vllm_refuses_greedy_with_several_samples():
    """Why the engines decode greedy once and repeat it."""
    from vllm.exceptions import VLLMValidationError

    with pytest.raises(VLLMValidationError, match="greedy"):
        vllm_sampling_params(SamplingParams(n=2, temperature=0.0))


@pytest.mark.parametrize("params", CASES)
def test_server_request_has_only_known_fields_and_pins_every_sampling_field(params):
    body = vllm_request("served", ["Q:1+2", "Q:3+4"], params, params.seed)
    assert set(body) <= set(CompletionRequest.model_fields)  # vLLM would accept unknown ones silently
    request = CompletionRequest(**body)
    sampling = request.to_sampling_params(params.max_new_tokens, default_sampling_params=SERVER_DEFAULTS)
    assert (sampling.temperature, sampling.top_p, sampling.top_k, sampling.min_p, sampling.repetition_penalty) == (
        params.temperature, params.top_p, 0, 0.0, 1.0)  # nothing of the server's defaults leaked in
    assert (sampling.n, sampling.max_tokens, sampling.logprobs, sampling.seed) == (params.n, params.max_new_tokens, 0, params.seed)
    assert request.return_token_ids and request.add_special_tokens is False


def test_openai_request_is_a_valid_completion_request():
    body = openai_request("teacher", ["Q:1+2"], CASES[1], 5)
    assert set(body) <= set(CompletionRequest.model_fields)
    assert CompletionRequest(**body).to_sampling_params(64).n == CASES[1].n


def test_request_outputs_become_completions():
    from vllm.outputs import CompletionOutput, RequestOutput

    def output(index, text, ids, logprob, finish):
        return CompletionOutput(index=index, text=text, token_ids=ids, cumulative_logprob=logprob,
                                logprobs=None, finish_reason=finish)

    requests = [
        RequestOutput("0", "Q:1", [1, 2], None, [output(1, "b", [7, 8, 9], -3.5, "length"),
                                                 output(0, "a", [5, 2], -1.25, "stop")], finished=True),
        RequestOutput("1", "Q:2", [3], None, [output(0, "c", [4], -0.5, "stop")], finished=True),
    ]
    rows = completions_from(requests)
    assert [[(c.text, c.token_count, c.sum_logprob, c.finish_reason) for c in row] for row in rows] == [
        [("a", 2, -1.25, "stop"), ("b", 3, -3.5, "length")], [("c", 1, -0.5, "stop")]]


def test_completion_response_becomes_completions():
    from vllm.entrypoints.openai.completion.protocol import CompletionLogProbs, CompletionResponseChoice

    def choice(index, text, logprobs, finish):
        return CompletionResponseChoice(index=index, text=text, finish_reason=finish, token_ids=list(range(len(logprobs))),
                                        logprobs=CompletionLogProbs(token_logprobs=logprobs, tokens=["t"] * len(logprobs)))

    response = CompletionResponse(model="served", usage={"prompt_tokens": 2, "completion_tokens": 6, "total_tokens": 8},
                                  choices=[choice(2, "c", [-0.5], "stop"), choice(0, "a", [-1.0, -0.25], "stop"),
                                           choice(3, "d", [-0.1, -0.2], "length"), choice(1, "b", [-2.0], "length")])
    rows = parse_completions(response.model_dump(mode="json"), num_prompts=2, n=2)
    assert [[(c.text, c.token_count, c.finish_reason) for c in row] for row in rows] == [
        [("a", 2, "stop"), ("b", 1, "length")], [("c", 1, "stop"), ("d", 2, "length")]]
    assert [c.sum_logprob for row in rows for c in row] == pytest.approx([-1.25, -2.0, -0.5, -0.3])
