"""DeepSpeed ZeRO-2/3 updates on 2 CPU processes (DS_ACCELERATOR=cpu, gloo): the saved policy is
complete (ZeRO-3 gathers the sharded weights on every rank) and equals the Trainer's own
checkpoint of the final step; config validation. The first run JIT-builds DeepSpeed's CPU
communication op (minutes): it goes to TORCH_EXTENSIONS_DIR and is reused after."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
from datasets import Dataset
from safetensors.torch import load_file

from policies.deepspeed import DeepSpeedSettings
from policies.launch import accelerate_command, train
from policies.train_settings import TrainSettings
from policies.training import TrainJob
from policies.updates.config import NodeSettings

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


def test_multi_node_launch_names_every_machine_and_the_rendezvous():
    nodes = NodeSettings(count=2, rank=1, main_address="10.0.0.1", main_port=29501).model_dump()
    cmd = accelerate_command(4, "policies.training", Path("job.json"), nodes)
    flags = dict(zip(cmd[::1], cmd[1:]))
    assert (flags["--num_processes"], flags["--num_machines"], flags["--machine_rank"]) == ("8", "2", "1")
    assert (flags["--main_process_ip"], flags["--main_process_port"], flags["--rdzv_backend"]) == ("10.0.0.1", "29501", "static")
    with pytest.raises(ValueError, match="must be below count"):
        NodeSettings(count=2, rank=2, main_address="10.0.0.1")
