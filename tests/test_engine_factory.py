"""Engines come from config through one factory; `model.tokenizer` is honoured, not ignored."""

from __future__ import annotations

from pathlib import Path

import pytest

from loop.config import ConfigError, validate
from policies.engines import SamplingParams, build_engine
from policies.engines.config import RolloutConfig
from policies.loading import load_tokenizer
from policies.model_config import ModelConfig

TEMPLATE = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}<assistant>"


@pytest.fixture(scope="module")
def tokenizer_only_dir(tiny_model_dir: Path, tmp_path_factory) -> Path:
    """The tiny model's tokenizer with a chat template added, saved on its own."""
    tokenizer = load_tokenizer(tiny_model_dir)
    tokenizer.chat_template = TEMPLATE
    out = tmp_path_factory.mktemp("tokenizer")
    tokenizer.save_pretrained(out)
    return out


def test_hf_engine_from_config_uses_the_configured_tokenizer(tiny_model_dir: Path, tokenizer_only_dir: Path):
    plain = build_engine(RolloutConfig(), ModelConfig(name=str(tiny_model_dir)), tiny_model_dir, "round_000")
    assert not getattr(plain.tokenizer, "chat_template", None)
    model = ModelConfig(name=str(tiny_model_dir), tokenizer=str(tokenizer_only_dir))
    engine = build_engine(RolloutConfig(batch_size=4), model, tiny_model_dir, "round_000")
    assert engine.tokenizer.chat_template == TEMPLATE and engine.generator_id == "round_000"
    assert len(engine.generate(["1+1="], SamplingParams(n=2, max_new_tokens=3))[0]) == 2


def test_tokenizer_with_a_tiny_model_is_refused():
    raw = {"model": {"tiny": {}, "tokenizer": "Qwen/Qwen2.5-0.5B"}, "data": {"task": {}}}
    with pytest.raises(ConfigError, match="model: tokenizer: a tiny model builds its own char tokenizer"):
        validate(raw)


def test_an_engine_that_does_not_exist_is_a_config_error():
    raw = {"model": {"tiny": {}}, "data": {"task": {}}, "rollout": {"engine": "sglang"}}
    with pytest.raises(ConfigError, match="rollout.engine"):
        validate(raw)


def test_training_uses_the_configured_tokenizer_and_saves_it(tiny_model_dir: Path, tokenizer_only_dir: Path,
                                                             tmp_path: Path):
    from datasets import Dataset

    from policies.train_settings import TrainSettings
    from policies.training import TrainJob, run_job

    data = tmp_path / "examples.parquet"
    Dataset.from_dict({"prompt": ["1+1="] * 4, "completion": ["2"] * 4}).to_parquet(str(data))
    job = TrainJob(model_path=str(tiny_model_dir), dataset_path=str(data), output_dir=str(tmp_path / "train"),
                   final_dir=str(tmp_path / "policy"), settings=TrainSettings(max_steps=1, batch_size=4),
                   tokenizer_path=str(tokenizer_only_dir))
    assert run_job(job).steps == 1
    assert load_tokenizer(tmp_path / "policy").chat_template == TEMPLATE  # the next round's engine reads it


def test_every_engine_has_every_method_of_the_rollout_engine_protocol():
    """The controller calls them on whatever engine the config names (`release_memory` included)."""
    from policies.engines.base import RolloutEngine
    from policies.engines.hf import HFEngine
    from policies.engines.openai_compat import OpenAIEngine
    from policies.engines.vllm import VLLMEngine
    from policies.engines.vllm_server import VLLMServerEngine

    methods = {name for name, value in vars(RolloutEngine).items() if callable(value) and not name.startswith("_")}
    assert methods == {"generate", "load_weights", "release_memory"}
    for engine in (HFEngine, OpenAIEngine, VLLMEngine, VLLMServerEngine):
        assert methods <= {name for name in dir(engine) if callable(getattr(engine, name))}, engine.__name__
