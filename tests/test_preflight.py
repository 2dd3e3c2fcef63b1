"""`loop/preflight.py`: every model a run will load is located before the run dir is made (not
only `model.name`), `tracking.mode: online` has W&B credentials, and a tiny GPT-2's positions
hold the longest prompt and generation. Hand-made configs; no hub, no W&B server."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from loop.config import ConfigError, load_config
from loop.preflight import check_positions, check_wandb_credentials, model_sources, preflight

DEMO = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"


def fields(overrides: list[str]) -> dict[str, str]:
    return {field: value for field, value, _ in model_sources(load_config(DEMO, overrides))}


def test_every_model_the_run_loads_is_a_source_to_check():
    assert fields(["teacher={model: org/teacher, tokenizer: org/tok}"]) == {"teacher.model": "org/teacher",
                                                                           "teacher.tokenizer": "org/tok"}
    assert fields(["update.algorithm=gkd", "update.gkd.teacher=org/gkd"]) == {"update.gkd.teacher": "org/gkd"}
    assert fields(["update.algorithm=cai", "update.cai.critic=org/critic"]) == {"update.cai.critic": "org/critic"}
    judge = "rewards=[{name: math}, {name: judge, args: {backend: hf, model: org/judge}}]"
    assert fields([judge]) == {"rewards.1.args.model": "org/judge"}


def test_models_the_run_never_loads_are_not_checked():
    assert fields(["update.gkd.teacher=org/unused", "update.cai.critic=org/unused"]) == {}  # algorithm rft


def test_an_unreachable_teacher_is_refused_offline(monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ConfigError, match="teacher.model: 'no-such-org/no-such-teacher' is not in the local hub cache"):
        preflight(load_config(DEMO, ["teacher={model: no-such-org/no-such-teacher, mode: all}"]))


@pytest.fixture
def no_wandb_credentials(tmp_path, monkeypatch):
    for key in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb"))
    from wandb.sdk import wandb_setup

    if wandb_setup.singleton().settings.api_key:  # read once per process, from the tester's settings
        pytest.skip("this process's wandb settings hold an API key")
    return tmp_path / "netrc"


def test_online_tracking_without_credentials_is_refused(no_wandb_credentials):
    with pytest.raises(ConfigError, match="tracking.mode: online needs W&B credentials .* set WANDB_API_KEY .* offline"):
        check_wandb_credentials(load_config(DEMO, ["tracking.mode=online"]))
    for quiet in (["tracking.mode=offline"], ["tracking.mode=auto"], ["tracking.wandb=false", "tracking.mode=online"]):
        check_wandb_credentials(load_config(DEMO, quiet))  # nothing to log in to


def test_online_tracking_with_a_key_in_the_environment_or_netrc_passes(no_wandb_credentials, monkeypatch):
    from wandb.sdk import wandb_setup

    cfg = load_config(DEMO, ["tracking.mode=online"])
    host = urlsplit(wandb_setup.singleton().settings.base_url).netloc
    no_wandb_credentials.write_text(f"machine {host}\n  login user\n  password {'a' * 40}\n")
    check_wandb_credentials(cfg)
    no_wandb_credentials.unlink()
    monkeypatch.setenv("WANDB_API_KEY", "a" * 40)
    check_wandb_credentials(cfg)


def test_a_tiny_gpt2_must_hold_the_longest_prompt_and_generation(tmp_path):
    rows = [{"prompt": f"{i:02d}+1", "answer": str(i + 1)} for i in range(19)] + [{"prompt": "1234567890123+1", "answer": "0"}]
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    raw = yaml.safe_load(DEMO.read_text())
    raw["model"]["tiny"] |= {"arch": "gpt2", "max_position_embeddings": 32}
    raw["data"] = {"path": str(data), "eval_size": 2}
    raw["update"]["seed_epochs"] = 0
    raw["control"] = {"enabled": False}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"the longest prompt \(15 tokens\), 17 new tokens and an end token need 33"):
        preflight(load_config(tmp_path / "c.yaml", ["rollout.max_new_tokens=17"]))
    preflight(load_config(tmp_path / "c.yaml", ["rollout.max_new_tokens=16"]))  # 15 + 16 + 1 fits exactly
