"""Tests for the embedded rollout engine (`policies/engines/hf.py`) on a tiny random Qwen2 with a
char tokenizer: shapes and order, recorded log-probabilities against a teacher-forced forward
pass, seeding, stop strings, and the in-place weight swap."""

from __future__ import annotations

import pytest
import torch

from policies.checkpoint import save_policy
from policies.engines.base import SamplingParams
from policies.engines.hf import HFEngine
from policies.loading import load_model, load_tokenizer

# Prompts of different lengths, so batches are left-padded. No "\n\n": the char tokenizer
# does not keep consecutive newlines apart (see the report on policies/loading.py).
PROMPTS = ["ab", "hello world", "x", "Q:12+7-3\n", "The answer is"]
MAX_NEW = 12


@pytest.fixture(scope="module")
def engine(tiny_model_dir) -> HFEngine:
    return HFEngine(tiny_model_dir, "round_000", batch_size=64, device="cpu")


def greedy(max_new_tokens: int = MAX_NEW, n: int = 1, stop: tuple[str, ...] = ()) -> SamplingParams:
    return SamplingParams(n=n, temperature=0.0, max_new_tokens=max_new_tokens, stop=stop)


def sample(engine: HFEngine, prompts: list[str], params: SamplingParams, seed: int):
    torch.manual_seed(seed)
    return engine.generate(prompts, params)


def char_ids(tokenizer, text: str) -> list[int]:
    """Token ids of `text` under the char tokenizer, one per character."""
    return tokenizer.convert_tokens_to_ids(list(text))


def plain(completion) -> bool:
    """Its text is exactly its tokens: no EOS, pad or <unk> was generated."""
    return completion.finish_reason == "length" and len(completion.text) == completion.token_count


@torch.no_grad()
def teacher_forced_logprob(model, tokenizer, prompt: str, completion_ids: list[int]) -> float:
    """log p(completion | prompt) from one forward pass over the unpadded prompt + completion."""
    prompt_ids = char_ids(tokenizer, prompt)
    logits = model(torch.tensor([prompt_ids + completion_ids])).logits[0].float()
    logprobs = torch.log_softmax(logits[len(prompt_ids) - 1 : -1], dim=-1)
    return logprobs.gather(1, torch.tensor(completion_ids)[:, None]).sum().item()


# --- shapes and order -----------------------------------------------------------------


@pytest.fixture(scope="module")
def greedy_alone(engine) -> list[list]:
    """Each prompt's greedy completion, generated on its own (no padding)."""
    return [engine.generate([prompt], greedy())[0] for prompt in PROMPTS]


@pytest.mark.parametrize("batch_size", [64, 2], ids=["one-call", "several-calls"])
def test_generate_returns_n_completions_per_prompt_in_prompt_order(tiny_model_dir, greedy_alone, batch_size):
    engine = HFEngine(tiny_model_dir, "round_000", batch_size=batch_size, device="cpu")
    batched = engine.generate(PROMPTS, greedy())
    assert len({row[0].text for row in greedy_alone}) > 1  # the prompts are told apart, so order is checked
    assert [[c.text for c in row] for row in batched] == [[c.text for c in row] for row in greedy_alone]
    for row, expected in zip(batched, greedy_alone):
        assert row[0].sum_logprob == pytest.approx(expected[0].sum_logprob, abs=1e-3)

    rows = sample(engine, PROMPTS, SamplingParams(n=3, max_new_tokens=4), seed=0)  # batch_size 2 < n: one prompt per call
    assert [len(row) for row in rows] == [3] * len(PROMPTS)


def test_no_prompts_no_completions(engine):
    assert engine.generate([], SamplingParams(n=2)) == []


@pytest.mark.parametrize("max_new_tokens", [1, 5, MAX_NEW])
def test_token_count_within_max_new_tokens(engine, max_new_tokens):
    rows = sample(engine, PROMPTS, SamplingParams(n=2, max_new_tokens=max_new_tokens), seed=0)
    completions = [c for row in rows for c in row]
    assert all(1 <= c.token_count <= max_new_tokens for c in completions)
    assert all(c.token_count == max_new_tokens for c in completions if c.finish_reason == "length")
    assert all(len(c.text) <= c.token_count for c in completions)
    assert all(c.finish_reason in ("stop", "length") for c in completions)


# --- log-probabilities ----------------------------------------------------------------


def test_greedy_logprob_equals_teacher_forced_loglikelihood(engine):
    rows = engine.generate(PROMPTS, greedy())
    for prompt, [completion] in zip(PROMPTS, rows):
        assert plain(completion)
        expected = teacher_forced_logprob(engine.model, engine.tokenizer, prompt,
                                          char_ids(engine.tokenizer, completion.text))
        assert completion.sum_logprob <= 0
        assert completion.sum_logprob == pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize("temperature,top_p", [(0.5, 1.0), (1.5, 0.9)])
def test_sampled_logprob_is_the_policy_loglikelihood_at_temperature_one(engine, temperature, top_p):
    rows = sample(engine, PROMPTS, SamplingParams(n=4, temperature=temperature, top_p=top_p,
                                                  max_new_tokens=MAX_NEW), seed=0)
    checked = 0
    for prompt, row in zip(PROMPTS, rows):
        for completion in filter(plain, row):
            expected = teacher_forced_logprob(engine.model, engine.tokenizer, prompt,
                                              char_ids(engine.tokenizer, completion.text))
            assert completion.sum_logprob == pytest.approx(expected, abs=1e-3)
            checked += 1
    assert checked >= 5
    assert all(c.sum_logprob <= 0 for row in rows for c in row)


def test_samples_follow_the_policy_not_shipped_or_library_sampling_defaults(tiny_model_dir, tmp_path):
    # A checkpoint may ship sampling defaults (Qwen: top_k=20, repetition_penalty=1.05) and
    # transformers adds its own (top_k=50). The engine samples at the temperature and top_p asked,
    # from the whole vocabulary: on this near-uniform random model, about half of the first
    # tokens fall outside the policy's 50 likeliest, as the policy's own probabilities say.
    model = load_model(tiny_model_dir, device="cpu")
    model.generation_config.update(do_sample=True, top_k=1, repetition_penalty=5.0)
    checkpoint = save_policy(model, load_tokenizer(tiny_model_dir), tmp_path / "shipped_defaults")
    engine = HFEngine(checkpoint, "round_000", batch_size=512, device="cpu")
    prompt = "Q:12+7-3\n"
    with torch.no_grad():
        probs = torch.softmax(engine.model(torch.tensor([char_ids(engine.tokenizer, prompt)])).logits[0, -1], -1)
    top50 = set(probs.topk(50).indices.tolist())
    expected_outside = 1 - probs[list(top50)].sum().item()

    [row] = sample(engine, [prompt], SamplingParams(n=512, temperature=1.0, max_new_tokens=1), seed=0)
    first = [char_ids(engine.tokenizer, c.text)[0] for c in row if c.text]
    outside = sum(token not in top50 for token in first) / len(first)

    assert expected_outside > 0.3 and len(first) > 400
    assert outside == pytest.approx(expected_outside, abs=0.08)
    assert len(set(first)) > 50


def test_static_and_dynamic_kv_cache_sample_the_same(tiny_model_dir):
    # The static cache (the default) is written in place and attended over its filled part;
    # the dynamic one is concatenated every step. Same seed: same tokens, log-probs equal to float rounding.
    static = HFEngine(tiny_model_dir, "round_000", batch_size=8, device="cpu", kv_cache="static")
    dynamic = HFEngine(tiny_model_dir, "round_000", batch_size=8, device="cpu", kv_cache="dynamic")
    params = SamplingParams(n=3, temperature=1.0, max_new_tokens=MAX_NEW)
    rows_static, rows_dynamic = sample(static, PROMPTS, params, seed=5), sample(dynamic, PROMPTS, params, seed=5)
    pairs = [(a, b) for ra, rb in zip(rows_static, rows_dynamic) for a, b in zip(ra, rb)]
    assert [a.text for a, _ in pairs] == [b.text for _, b in pairs]
    assert [a.sum_logprob for a, _ in pairs] == pytest.approx([b.sum_logprob for _, b in pairs], abs=1e-4)


@pytest.mark.parametrize("kv_cache", ["dynamic", "static"])
def test_prompt_run_once_for_its_n_samples_samples_as_running_every_row_does(tiny_model_dir, kv_cache):
    # The engine runs each prompt through the model once and copies its cache to its n samples.
    # Same seed with that shortcut off (`generate` then runs all n rows of every prompt): the same
    # tokens, on left-padded prompts (one of them a single token).
    once = HFEngine(tiny_model_dir, "round_000", batch_size=64, device="cpu", kv_cache=kv_cache)
    every_row = HFEngine(tiny_model_dir, "round_000", batch_size=64, device="cpu", kv_cache=kv_cache)
    every_row._prefill_once = False
    params = SamplingParams(n=4, temperature=1.0, max_new_tokens=MAX_NEW)
    texts = [c.text for row in sample(once, PROMPTS, params, seed=11) for c in row]
    assert texts == [c.text for row in sample(every_row, PROMPTS, params, seed=11) for c in row]
    assert len(set(texts)) > len(PROMPTS)  # really sampled: a prompt's samples differ


# --- seeding --------------------------------------------------------------------------


def test_same_seed_same_samples(engine):
    params = SamplingParams(n=3, max_new_tokens=MAX_NEW)
    first, again = sample(engine, PROMPTS, params, seed=7), sample(engine, PROMPTS, params, seed=7)
    other = sample(engine, PROMPTS, params, seed=8)
    assert first == again
    assert [c.text for row in first for c in row] != [c.text for row in other for c in row]
    assert len({c.text for c in first[0]}) > 1  # n samples of one prompt differ


def test_greedy_is_deterministic(engine):
    assert sample(engine, PROMPTS, greedy(), seed=0) == sample(engine, PROMPTS, greedy(), seed=1)


def test_greedy_with_n_samples_returns_n_copies(engine):
    rows = engine.generate(PROMPTS, greedy(n=3))
    alone = engine.generate(PROMPTS, greedy())
    assert [[c.text for c in row] for row in rows] == [[row[0].text] * 3 for row in alone]


# --- stop strings ---------------------------------------------------------------------


def stop_case(engine: HFEngine, prompts: list[str]):
    """A seed, a stop string that first occurs at `cut` in prompt 0's free sample and nowhere
    in the others', and the free samples."""
    params = SamplingParams(n=1, max_new_tokens=MAX_NEW)
    for seed in range(50):
        free = [row[0] for row in sample(engine, prompts, params, seed)]
        if not all(map(plain, free)):
            continue
        text = free[0].text
        for cut in range(2, 8):
            stop = text[cut : cut + 2]
            if text.find(stop) == cut and not any(stop in c.text for c in free[1:]):
                return seed, stop, cut, free
    pytest.fail("no seed in range(50) gives a usable stop string")


STOP_CASES = {"alone": ["ab"], "batched": ["ab", "hello world", "x"]}


@pytest.fixture(scope="module")
def stop_cases(engine) -> dict:
    return {name: stop_case(engine, prompts) for name, prompts in STOP_CASES.items()}


@pytest.mark.parametrize("case", STOP_CASES)
def test_stop_string_cuts_the_text(engine, stop_cases, case):
    prompts, (seed, stop, cut, free) = STOP_CASES[case], stop_cases[case]
    params = SamplingParams(n=1, max_new_tokens=MAX_NEW, stop=(stop, "never-generated"))
    stopped = [row[0] for row in sample(engine, prompts, params, seed)]
    assert stopped[0].text == free[0].text[:cut]
    assert [c.text for c in stopped[1:]] == [c.text for c in free[1:]]  # other rows run on
    assert [c.finish_reason for c in stopped[1:]] == ["length"] * (len(prompts) - 1)


@pytest.mark.parametrize("case", STOP_CASES)
def test_stop_string_completion_counts_exactly_the_generated_tokens(engine, stop_cases, case):
    prompts, (seed, stop, cut, free) = STOP_CASES[case], stop_cases[case]
    stopped = sample(engine, prompts, SamplingParams(n=1, max_new_tokens=MAX_NEW, stop=(stop,)), seed)[0][0]
    generated = free[0].text[: cut + len(stop)]  # the stop string was generated, then cut from the text
    expected = teacher_forced_logprob(engine.model, engine.tokenizer, prompts[0],
                                      char_ids(engine.tokenizer, generated))
    assert (stopped.finish_reason, stopped.token_count) == ("stop", len(generated))
    assert stopped.sum_logprob == pytest.approx(expected, abs=1e-3)


def test_generation_stops_at_eos(engine):
    """No decoding step is spent after a sample has ended."""
    steps = []
    hook = engine.model.register_forward_hook(lambda *args: steps.append(1))
    stopped = 0
    try:
        for seed in range(20):
            steps.clear()
            [[completion]] = sample(engine, ["ab"], SamplingParams(n=1, max_new_tokens=30), seed)
            if completion.finish_reason == "stop":
                stopped += 1
                assert len(steps) == completion.token_count, f"seed {seed}"
            if stopped == 3:
                break
    finally:
        hook.remove()
    assert stopped > 0


# --- weight swap ----------------------------------------------------------------------


def test_load_weights_swaps_in_place(tiny_model_dir, tmp_path):
    engine = HFEngine(tiny_model_dir, "round_000", device="cpu")
    before = engine.generate(PROMPTS, greedy())
    parameters = dict(engine.model.named_parameters())

    perturbed = load_model(tiny_model_dir, device="cpu")
    torch.manual_seed(1)
    with torch.no_grad():
        for p in perturbed.parameters():
            p.add_(0.5 * torch.randn_like(p))
    checkpoint = save_policy(perturbed, load_tokenizer(tiny_model_dir), tmp_path / "round_001")

    engine.load_weights(checkpoint, "round_001")
    after = engine.generate(PROMPTS, greedy())

    assert engine.generator_id == "round_001"
    assert [row[0].text for row in after] != [row[0].text for row in before]
    assert all(p is parameters[name] for name, p in engine.model.named_parameters())  # same tensors
    assert engine.model.lm_head.weight is engine.model.model.embed_tokens.weight  # still tied
    # Nothing was copied: every parameter is a view of the checkpoint file's memory map.
    file_bytes = (checkpoint / "model.safetensors").stat().st_size
    assert {p.untyped_storage().nbytes() for p in engine.model.parameters()} == {file_bytes}
    for name, p in perturbed.named_parameters():
        torch.testing.assert_close(engine.model.get_parameter(name), p, rtol=0, atol=0)
    fresh = HFEngine(checkpoint, "round_001", device="cpu").generate(PROMPTS, greedy())
    assert [row[0].text for row in after] == [row[0].text for row in fresh]
    assert [row[0].sum_logprob for row in after] == pytest.approx([row[0].sum_logprob for row in fresh], abs=1e-4)
    with torch.no_grad():  # the map is copy-on-write: changing the live weights leaves the file alone
        engine.model.model.norm.weight.add_(1.0)
    reloaded = load_model(checkpoint, device="cpu")
    assert torch.equal(reloaded.model.norm.weight, perturbed.model.norm.weight)


def test_load_weights_into_another_dtype_and_refuses_another_shape(tiny_model_dir, tmp_path):
    # A bfloat16 engine takes a float32 checkpoint through the converting path; a checkpoint of
    # another shape is refused before any weight changes.
    engine = HFEngine(tiny_model_dir, "round_000", dtype="bfloat16", device="cpu")
    perturbed = load_model(tiny_model_dir, device="cpu")
    with torch.no_grad():
        for p in perturbed.parameters():
            p.mul_(0.5)
    engine.load_weights(save_policy(perturbed, load_tokenizer(tiny_model_dir), tmp_path / "half"), "half")
    for name, p in perturbed.named_parameters():
        assert torch.equal(engine.model.get_parameter(name), p.to(torch.bfloat16)), name
    before = {name: p.clone() for name, p in engine.model.named_parameters()}
    with torch.no_grad():
        perturbed.get_parameter("model.norm.weight").data = torch.ones(3)
    wrong = save_policy(perturbed, load_tokenizer(tiny_model_dir), tmp_path / "wrong")
    with pytest.raises(ValueError, match="other shape \\['model.norm.weight'\\]"):
        engine.load_weights(wrong, "wrong")
    assert all(torch.equal(p, before[name]) for name, p in engine.model.named_parameters())
