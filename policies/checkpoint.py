"""Checkpoints: save a policy atomically; swap its weights into a live model in place.

The swap is what makes the next round's generator the new checkpoint without building a new
engine: the tensors are copied into the existing parameters, so compiled graphs, KV-cache
allocations and the process itself survive.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from policies.atomic import atomic_dir


def read_state_dict(checkpoint_dir: Path) -> dict[str, torch.Tensor]:
    files = sorted(Path(checkpoint_dir).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no *.safetensors weights in {checkpoint_dir}")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(load_file(f))
    return state


@torch.no_grad()
def swap_weights(model: torch.nn.Module, checkpoint_dir: Path) -> float:
    """Copy the checkpoint's weights into `model`'s parameters; returns seconds taken.

    Each tensor is read from the (memory-mapped) file and copied straight into its parameter:
    one copy, no second full state dict in memory. Keys are checked before anything is copied,
    so a checkpoint of another model leaves this one untouched.
    """
    start = time.perf_counter()
    files = sorted(Path(checkpoint_dir).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no *.safetensors weights in {checkpoint_dir}")
    targets = model.state_dict()  # tensors sharing storage with the live parameters
    handles = [safe_open(str(f), framework="pt") for f in files]
    found = {key: h for h in handles for key in h.keys()}
    tied = set(getattr(model, "_tied_weights_keys", None) or {})
    missing = [k for k in targets if k not in found and k not in tied]
    unexpected = [k for k in found if k not in targets]
    if missing or unexpected:
        raise ValueError(f"checkpoint {checkpoint_dir} does not fit the model: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")
    for key, handle in found.items():
        targets[key].copy_(handle.get_tensor(key))
    return time.perf_counter() - start


def save_policy(model, tokenizer, out_dir: Path) -> Path:
    """Save model + tokenizer as a loadable `from_pretrained` directory, atomically."""
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return Path(out_dir)
