"""DeepSpeed ZeRO-2/3 updates on 2 CPU processes (DS_ACCELERATOR=cpu, gloo), for SFT, DPO (with
its reference model) and GRPO, and with the optimizer offloaded to CPU: the saved policy is
complete (ZeRO-3 gathers the sharded weights on every rank), reloads with `from_pretrained`,
and equals the Trainer's own checkpoint of the final step; config validation. Offloading
JIT-builds DeepSpeed's CPU Adam op on first use (minutes): it goes to TORCH_EXTENSIONS_DIR
(default ~/.cache/torch_extensions) and is reused after."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
from datasets import Dataset
from safetensors.torch import load_file

from policies.deepspeed import DeepSpeedSettings
from policies.engines.config import RolloutConfig
from policies.launch import accelerate_command, train
from policies.loading import load_model
from policies.train_settings import TrainSettings
from policies.training import TrainJob
from policies.updates.config import NodeSettings, UpdateConfig
from policies.updates.dpo import DPO
from policies.updates.grpo import GRPO
from rewards.registry import RewardSpec

needs_deepspeed = pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None, reason="pip install deepspeed")


@needs_deepspeed
@pytest.mark.slow
@pytest.mark.parametrize("stage", [2, 3])
def test_zero_update_on_two_cpu_processes_saves_the_trained_weights(tiny_model_dir, tmp_path, stage, monkeypatch):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", os.environ.get("TORCH_EXTENSIONS_DIR", str(Path.home() / ".cache" / "torch_extensions")))
    Dataset.from_dict({"prompt": [f"Q:{i}+1" for i in range(16)],
                       "completion": [f" {i + 1}" for i in range(16)]}).to_parquet(str(tmp_path / "d.parquet"))
    # threshold 0: every parameter is sharded, so an ungathered save would hold empty tensors
    ds = DeepSpeedSettings(stage=stage, param_persistence_threshold=0 if stage == 3 else None)
    job = TrainJob(model_path=str(tiny_model_dir), dataset_path=str(tmp_path / "d.parquet"),
                   output_dir=str(tmp_path / "train"), final_dir=str(tmp_path / "final"), deepspeed=ds.config(),
                   settings=TrainSettings(batch_size=4, max_steps=2, save_steps=2, learning_rate=1e-2))
    result = train(job, num_processes=2)
    saved = load_file(tmp_path / "final" / "model.safetensors")
    trainer_own = load_file(tmp_path / "train" / "checkpoint-2" / "model.safetensors")  # DeepSpeed's own gather
    base = load_file(Path(tiny_model_dir) / "model.safetensors")
    assert result.steps == 2 and saved.keys() == base.keys()
    assert all(saved[k].shape == base[k].shape for k in base)
    assert all((saved[k] - trainer_own[k]).abs().max() == 0 for k in saved)  # its tied lm_head may be extra
    assert any((saved[k] - base[k]).abs().max() > 1e-4 for k in base)  # it trained


def _pairs(path: Path) -> Path:
    """DPO pairs: the right sum chosen over a wrong one."""
    Dataset.from_dict({"prompt": [f"Q:{i}+1=" for i in range(8)], "chosen": [f" {i + 1}" for i in range(8)],
                       "rejected": [f" {i + 5}" for i in range(8)],
                       "prompt_id": [str(i) for i in range(8)]}).to_parquet(str(path))
    return path


def _problems(path: Path) -> Path:
    """GRPO prompts, with the columns the math reward reads."""
    Dataset.from_dict({"prompt": [f"Q:{i}+1=" for i in range(4)], "problem": [f"{i}+1" for i in range(4)],
                       "reference_answer": [str(i + 1) for i in range(4)]}).to_parquet(str(path))
    return path


def _algorithm(name: str, ds: DeepSpeedSettings):
    if name == "dpo":
        return DPO(UpdateConfig(algorithm="dpo", deepspeed=ds)), _pairs
    # 2 prompts x 4 completions per step, 4 per process; 2 steps
    cfg = UpdateConfig(algorithm="grpo", deepspeed=ds, grpo={"prompts_per_step": 2, "steps": 2})
    rewards = [RewardSpec(name="math"), RewardSpec(name="varied_reward:distinct_share")]  # the math reward alone is 0 for all
    return GRPO(cfg, rewards, RolloutConfig(n=4, max_new_tokens=8)), _problems


@needs_deepspeed
@pytest.mark.slow
@pytest.mark.parametrize("algorithm,stage,offload", [
    ("dpo", 2, "none"), ("dpo", 3, "none"), ("grpo", 2, "none"), ("grpo", 3, "none"), ("dpo", 3, "cpu"),
])
def test_dpo_and_grpo_under_zero_save_weights_that_reload_as_trained(tiny_model_dir, tmp_path, monkeypatch,
                                                                     algorithm, stage, offload):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", os.environ.get("TORCH_EXTENSIONS_DIR", str(Path.home() / ".cache" / "torch_extensions")))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]))  # varied_reward
    ds = DeepSpeedSettings(stage=stage, offload_optimizer=offload, param_persistence_threshold=0 if stage == 3 else None)
    update, write_data = _algorithm(algorithm, ds)
    job = TrainJob(model_path=str(tiny_model_dir), dataset_path=str(write_data(tmp_path / "d.parquet")),
                   output_dir=str(tmp_path / "train"), final_dir=str(tmp_path / "final"), deepspeed=ds.config(),
                   settings=TrainSettings(batch_size=4, max_steps=2, save_steps=2, learning_rate=1e-2))
    result = update.train(job, num_processes=2)
    reloaded = {k: v for k, v in load_model(tmp_path / "final", device="cpu").state_dict().items()}
    trainer_own = load_file(tmp_path / "train" / "checkpoint-2" / "model.safetensors")  # DeepSpeed's own gather
    base = load_file(Path(tiny_model_dir) / "model.safetensors")
    assert result.steps == 2
    assert all(reloaded[k].shape == base[k].shape for k in base)  # an ungathered ZeRO-3 save holds empty tensors
    assert all((reloaded[k] - trainer_own[k]).abs().max() == 0 for k in trainer_own)
    assert any((reloaded[k] - base[k]).abs().max() > 1e-4 for k in base)  # it trained


def test_deepspeed_config_carries_the_settings():
    zero = DeepSpeedSettings(stage=3, offload_optimizer="cpu", offload_param="cpu",
                             param_persistence_threshold=0).config()["zero_optimization"]
    assert zero["stage"] == 3 and zero["offload_optimizer"]["device"] == zero["offload_param"]["device"] == "cpu"
    assert zero["stage3_gather_16bit_weights_on_model_save"] and zero["stage3_param_persistence_threshold"] == 0
    assert "offload_param" not in DeepSpeedSettings(stage=2).config()["zero_optimization"]


@pytest.mark.parametrize("settings,message", [
    ({"stage": 2, "offload_param": "cpu"}, "offload_param needs stage: 3"),
    ({"stage": 1}, "stage"),
    ({"stage": 2, "param_persistence_threshold": 0}, "ZeRO-3 setting"),
])
def test_deepspeed_settings_are_validated(settings, message):
    with pytest.raises(ValueError, match=message):
        DeepSpeedSettings(**settings)


@pytest.mark.slow
def test_two_machines_on_localhost_train_one_update(tiny_model_dir, tmp_path):
    """`update.nodes` for real: two "machines" (machine_rank 0 and 1, static rendezvous at
    127.0.0.1) each launch the same job on the shared run dir, as two `loop` commands would;
    the group trains once and rank 0 saves the policy."""
    from concurrent.futures import ThreadPoolExecutor
    from dataclasses import replace

    from policies.launch import _free_port

    Dataset.from_dict({"prompt": [f"Q:{i}+1" for i in range(16)],
                       "completion": [f" {i + 1}" for i in range(16)]}).to_parquet(str(tmp_path / "d.parquet"))
    port = _free_port()
    job = TrainJob(model_path=str(tiny_model_dir), dataset_path=str(tmp_path / "d.parquet"),
                   output_dir=str(tmp_path / "train"), final_dir=str(tmp_path / "final"),
                   settings=TrainSettings(batch_size=4, max_steps=2, save_steps=2, learning_rate=1e-2))
    nodes = NodeSettings(count=2, main_address="127.0.0.1", main_port=port).model_dump()
    machines = [replace(job, nodes={**nodes, "rank": rank}) for rank in (0, 1)]
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda j: train(j, num_processes=1), machines))
    saved = load_file(tmp_path / "final" / "model.safetensors")
    base = load_file(Path(tiny_model_dir) / "model.safetensors")
    assert [r.steps for r in results] == [2, 2]  # both read the one result rank 0 wrote
    assert any((saved[k] - base[k]).abs().max() > 1e-4 for k in base)  # it trained
    assert all(saved[k].shape == base[k].shape for k in base)


def test_multi_node_launch_names_every_machine_and_the_rendezvous():
    nodes = NodeSettings(count=2, main_address="10.0.0.1", main_port=29501).model_dump()
    cmd = accelerate_command(4, "policies.training", Path("job.json"), {**nodes, "rank": 1})
    flags = dict(zip(cmd[::1], cmd[1:]))
    assert (flags["--num_processes"], flags["--num_machines"], flags["--machine_rank"]) == ("8", "2", "1")
    assert (flags["--main_process_ip"], flags["--main_process_port"], flags["--rdzv_backend"]) == ("10.0.0.1", "29501", "static")
    with pytest.raises(ValueError, match="count"):
        NodeSettings(count=1, main_address="10.0.0.1")
