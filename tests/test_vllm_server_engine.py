"""The `vllm_server` and `openai` engines over real HTTP against `VLLMStandIn` servers: a fake
stand-in for `vllm serve` (vLLM cannot run on a CPU), answering with a real tiny HF model and
swapping its weights for real. Sharding and failover over two servers, retries, the weight
reload each round (and its verification), LoRA adapters, and the request bodies sent."""

from __future__ import annotations

import pytest
from datasets import Dataset
import torch

from openai_server import OpenAITestServer, VLLMStandIn
from policies.checkpoint import save_policy
from policies.engines import build_engine
from policies.engines.base import SamplingParams
from policies.engines.completions import openai_request
from policies.engines.config import RolloutConfig, ServerOptions
from policies.engines.hf import HFEngine
from policies.engines.openai_compat import OpenAIEngine
from policies.engines.server_pool import NoServersLeft
from policies.engines.vllm_server import VLLMServerEngine
from policies.loading import load_model, load_tokenizer
from policies.model_config import ModelConfig

PROMPTS = ["ab", "hello world", "x", "Q:12+7-3\n", "The answer is", "zz", "Q:1+1", "abc"]
PARAMS = SamplingParams(n=3, temperature=1.0, max_new_tokens=8, seed=11)


@pytest.fixture(scope="module")
def perturbed_checkpoint(tiny_model_dir, tmp_path_factory):
    """The tiny model with noise added: another round's policy."""
    model = load_model(tiny_model_dir, device="cpu")
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5 * torch.randn_like(p))
    return save_policy(model, load_tokenizer(tiny_model_dir), tmp_path_factory.mktemp("ckpt") / "round_001")


def engine_for(servers, checkpoint, generator_id="round_000", **options) -> VLLMServerEngine:
    engine = VLLMServerEngine([s.url for s in servers], ServerOptions(**options), checkpoint, generator_id)
    engine.pool.backoff_s = 0.01
    return engine


def texts(rows) -> list[list[str]]:
    return [[c.text for c in row] for row in rows]


def reference(model_dir, params: SamplingParams, shard_size: int, prompts=PROMPTS):
    """What the stand-in answers, shard by shard (seed + shard index), from an HFEngine here."""
    engine = HFEngine(model_dir, "ref", batch_size=64, device="cpu")
    rows = []
    for i, start in enumerate(range(0, len(prompts), shard_size)):
        torch.manual_seed(params.seed + i)
        rows += engine.generate(prompts[start : start + shard_size], params)
    return rows


def test_fake_vllm_standin_samples_n_per_prompt_with_counts_and_logprobs(tiny_model_dir):
    with OpenAITestServer(backend=VLLMStandIn(tiny_model_dir)) as server:
        engine = engine_for([server], tiny_model_dir, prompts_per_request=3)
        rows = engine.generate(PROMPTS, PARAMS)
        body = server.requests[-1].body
    expected = reference(tiny_model_dir, PARAMS, shard_size=3)
    assert texts(rows) == texts(expected)
    assert [[c.token_count for c in r] for r in rows] == [[c.token_count for c in r] for r in expected]
    for row, ref in zip(rows, expected):
        assert [c.sum_logprob for c in row] == pytest.approx([c.sum_logprob for c in ref], abs=1e-4)
        assert [c.finish_reason for c in row] == [c.finish_reason for c in ref]
    # every sampling field explicit, so the served model's generation_config cannot leak in
    assert {"n": 3, "temperature": 1.0, "top_p": 1.0, "top_k": 0, "min_p": 0.0, "repetition_penalty": 1.0,
            "max_tokens": 8, "logprobs": 0, "return_token_ids": True, "add_special_tokens": False}.items() <= body.items()


def test_fake_vllm_standin_greedy_with_n_is_decoded_once_and_repeated(tiny_model_dir):
    with OpenAITestServer(backend=VLLMStandIn(tiny_model_dir)) as server:
        engine = engine_for([server], tiny_model_dir)
        rows = engine.generate(PROMPTS[:3], SamplingParams(n=2, temperature=0.0, max_new_tokens=6))
        assert all(r.body["n"] == 1 for r in server.requests if r.path == "/v1/completions")
    assert [len(set(row)) for row in texts(rows)] == [1, 1, 1] and [len(row) for row in rows] == [2, 2, 2]


def test_two_fake_vllm_standins_one_killed_mid_round_its_shards_redone(tiny_model_dir):
    dying, healthy = VLLMStandIn(tiny_model_dir, die_after=1), VLLMStandIn(tiny_model_dir)
    with OpenAITestServer(backend=dying) as a, OpenAITestServer(backend=healthy) as b:
        engine = engine_for([a, b], tiny_model_dir, prompts_per_request=2, in_flight=1)
        rows = engine.generate(PROMPTS, PARAMS)
        assert list(engine.pool.dropped) == [a.url[: -len("/v1")]]
        assert engine.pool.live == [b.url[: -len("/v1")]]
        again = engine.generate(PROMPTS, PARAMS)  # the rest of the run uses the survivor
    # a redone shard keeps its seed: the answers are those of an undisturbed run
    assert texts(rows) == texts(reference(tiny_model_dir, PARAMS, shard_size=2)) == texts(again)
    assert dying.completions == 2 and healthy.completions >= len(PROMPTS) // 2


def test_fake_vllm_standin_answering_503_is_retried(tiny_model_dir):
    flaky = VLLMStandIn(tiny_model_dir, fail_first=2)
    with OpenAITestServer(backend=flaky) as server:
        engine = engine_for([server], tiny_model_dir, retries=2, prompts_per_request=8, in_flight=1)
        rows = engine.generate(PROMPTS, PARAMS)
    assert flaky.completions == 3 and texts(rows) == texts(reference(tiny_model_dir, PARAMS, shard_size=8))


def test_all_fake_vllm_standins_dead_is_an_error(tiny_model_dir):
    with OpenAITestServer(backend=VLLMStandIn(tiny_model_dir, die_after=0)) as server:
        engine = engine_for([server], tiny_model_dir)
        with pytest.raises(NoServersLeft, match="no server left"):
            engine.generate(PROMPTS, PARAMS)


def test_reload_on_two_fake_vllm_standins_swaps_weights_and_changes_outputs(tiny_model_dir, perturbed_checkpoint):
    greedy = SamplingParams(n=1, temperature=0.0, max_new_tokens=10)
    standins = [VLLMStandIn(tiny_model_dir), VLLMStandIn(tiny_model_dir)]
    with OpenAITestServer(backend=standins[0]) as a, OpenAITestServer(backend=standins[1]) as b:
        engine = engine_for([a, b], tiny_model_dir, prompts_per_request=2)
        before = engine.generate(PROMPTS, greedy)
        engine.load_weights(perturbed_checkpoint, "round_001")
        after = engine.generate(PROMPTS, greedy)
        routes = [r.path for r in a.requests if r.path != "/v1/completions"]
    fresh = HFEngine(perturbed_checkpoint, "x", device="cpu").generate(PROMPTS, greedy)
    assert texts(after) == texts(fresh) != texts(before)
    assert engine.generator_id == "round_001"
    assert all(s.version == "round_001" and s.reloads[-1] == str(perturbed_checkpoint.resolve()) for s in standins)
    assert routes[-4:] == ["/collective_rpc", "/reset_prefix_cache", "/update_weight_version", "/weight_info"]


def test_reload_drops_a_fake_vllm_standin_that_cannot_take_the_weights(tiny_model_dir, perturbed_checkpoint, tmp_path):
    with OpenAITestServer(backend=VLLMStandIn(tiny_model_dir)) as a, \
            OpenAITestServer(backend=VLLMStandIn(tiny_model_dir)) as b:
        engine = engine_for([a, b], tiny_model_dir, retries=0)
        b.kill()
        engine.load_weights(perturbed_checkpoint, "round_001")
        assert engine.pool.live == [a.url[: -len("/v1")]]
        with pytest.raises(NoServersLeft):
            engine.load_weights(tmp_path, "round_002")  # no weights there: the last server fails too


def test_lora_adapter_on_fake_vllm_standin_loads_under_a_fresh_name(tiny_model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(load_model(tiny_model_dir, device="cpu"), LoraConfig(r=4, target_modules="all-linear"))
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    model.save_pretrained(tmp_path / "adapter")
    merged = save_policy(model.merge_and_unload(), load_tokenizer(tiny_model_dir), tmp_path / "merged")
    greedy = SamplingParams(n=1, temperature=0.0, max_new_tokens=10)
    with OpenAITestServer(backend=VLLMStandIn(tiny_model_dir)) as server:
        engine = engine_for([server], tiny_model_dir)
        engine.load_weights(tmp_path / "adapter", "round_001")
        first = engine.model
        rows = engine.generate(PROMPTS, greedy)
        engine.load_weights(tmp_path / "adapter", "round_002")
        assert engine.model != first and engine.model.startswith("round_002")
        assert server.requests[-1].body == {"lora_name": engine.model, "lora_path": str((tmp_path / "adapter").resolve())}
    assert texts(rows) == texts(HFEngine(merged, "m", device="cpu").generate(PROMPTS, greedy))


def test_openai_engine_is_a_fixed_generator_against_a_fake_server(tiny_model_dir, perturbed_checkpoint):
    standin = VLLMStandIn(tiny_model_dir, served_name="teacher")
    with OpenAITestServer(backend=standin) as server:
        engine = OpenAIEngine([server.url], ServerOptions(), tiny_model_dir)
        rows = engine.generate(PROMPTS[:2], SamplingParams(n=2, max_new_tokens=5, seed=3))
        engine.load_weights(perturbed_checkpoint, "round_001")
        body = server.requests[-1].body
    assert engine.generator_id == "openai:teacher" and standin.reloads == []
    assert [len(row) for row in rows] == [2, 2] and all(c.token_count >= 1 for row in rows for c in row)
    assert set(body) == set(openai_request("m", ["p"], SamplingParams(seed=1), 1))  # OpenAI's fields only


def test_factory_builds_the_configured_server_engine(tiny_model_dir):
    with OpenAITestServer(backend=VLLMStandIn(tiny_model_dir)) as server:
        rollout = RolloutConfig(engine="vllm_server", servers=[server.url])
        engine = build_engine(rollout, ModelConfig(name=str(tiny_model_dir)), tiny_model_dir, "round_000")
        assert isinstance(engine, VLLMServerEngine) and engine.model == "served"


@pytest.mark.parametrize("section,message", [
    ({"engine": "vllm_server"}, "needs servers"),
    ({"engine": "hf", "servers": ["http://127.0.0.1:8000"]}, "servers is used only by"),
    ({"engine": "vllm_server", "servers": ["node1:8000"]}, "is not a URL"),
    ({"engine": "hf", "vllm": {"gpu_memory_utilization": 0.3}}, "vllm options are used only"),
    ({"engine": "hf", "server": {"retries": 1}}, "server options are used only"),
    ({"engine": "vllm_server", "servers": ["http://127.0.0.1:8000"], "kv_cache": "static"}, "kv_cache: static is used only by"),
])
def test_rollout_engine_options_are_validated(section, message):
    with pytest.raises(ValueError, match=message):
        RolloutConfig(**section)


def test_vllm_engine_without_vllm_installed_is_a_config_error():
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is importable here")
    with pytest.raises(ValueError, match="engine vllm needs vLLM"):
        RolloutConfig(engine="vllm")


def test_loop_round_with_vllm_server_engine_against_two_fake_vllm_standins(tmp_path):
    """`loop run` with rollout.engine=vllm_server: the stand-ins start from an untrained copy of
    the run's tiny model and are reloaded with each round's checkpoint."""
    from loop.cli import main
    from loop.config import load_config
    from policies.loading import build_tiny
    from conftest import write_config

    (tmp_path / "probe").mkdir()
    plain = load_config(write_config(tmp_path / "probe"))
    start = build_tiny(plain.model, seed=plain.seed + 1, out_dir=tmp_path / "other_start")
    standins = [VLLMStandIn(start), VLLMStandIn(start)]
    with OpenAITestServer(backend=standins[0]) as a, OpenAITestServer(backend=standins[1]) as b:
        config = write_config(tmp_path, rounds=1, control={"enabled": False},
                              rollout__engine="vllm_server", rollout__servers=[a.url, b.url],
                              rollout__server={"prompts_per_request": 2})
        assert main(["run", str(config)]) == 0
    run_dir = tmp_path / "runs" / "tiny"
    checkpoint = str((run_dir / "round_001" / "checkpoint").resolve())
    assert all(s.version == "round_001" and s.reloads[-1] == checkpoint for s in standins)
    assert all(s.completions > 0 for s in standins)  # the work was spread over both
    rollouts = Dataset.from_parquet(str(run_dir / "round_001" / "rollouts" / "shard_00000.parquet"))
    assert set(rollouts["generator_id"]) == {"round_000"} and min(rollouts["token_count"]) >= 1
