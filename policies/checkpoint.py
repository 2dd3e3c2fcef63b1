"""Checkpoints: save a policy atomically; swap its weights into a live model in place.

The swap is what makes the next round's generator the new checkpoint without building a new
engine: the tensors are copied into the existing parameters, so compiled graphs, KV-cache
allocations and the process itself survive.
"""

from __future__ import annotations

import json
import sys
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

    Keys are checked before anything is copied, so a checkpoint of another model leaves this
    one untouched. A CPU parameter of the file's dtype and shape is filled by reading its
    bytes from the file straight into the parameter's memory (one copy, in file order);
    others (on an accelerator, or of another dtype) are read through `safe_open` and copied.
    """
    start = time.perf_counter()
    files = sorted(Path(checkpoint_dir).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no *.safetensors weights in {checkpoint_dir}")
    targets = model.state_dict()  # tensors sharing storage with the live parameters
    headers = {f: _read_header(f) for f in files}
    found = {key: info for header, _ in headers.values() for key, info in header.items() if key != "__metadata__"}
    tied = set(getattr(model, "_tied_weights_keys", None) or {})
    missing = [k for k in targets if k not in found and k not in tied]
    unexpected = [k for k in found if k not in targets]
    reshaped = [k for k, info in found.items() if k in targets and list(targets[k].shape) != info["shape"]]
    if missing or unexpected or reshaped:
        raise ValueError(f"checkpoint {checkpoint_dir} does not fit the model: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}, other shape {reshaped[:5]}")
    for path, (header, data_start) in headers.items():
        _read_into(path, header, data_start, targets)
    return time.perf_counter() - start


# safetensors' dtype codes for the dtypes a parameter can be read into byte for byte.
_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
           "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
           "BOOL": torch.bool}


def _read_header(path: Path) -> tuple[dict, int]:
    """The file's header and where its data starts (safetensors: u64 length, JSON, data)."""
    with open(path, "rb") as f:
        length = int.from_bytes(f.read(8), "little")
        return json.loads(f.read(length)), 8 + length


def _read_into(path: Path, header: dict, data_start: int, targets: dict[str, torch.Tensor]) -> None:
    entries = sorted((info["data_offsets"], key, info) for key, info in header.items() if key != "__metadata__")
    other = []
    with open(path, "rb", buffering=0) as f:
        for (begin, end), key, info in entries:
            target = targets[key]
            if not _readable_in_place(target, info, end - begin):
                other.append(key)
                continue
            f.seek(data_start + begin)
            view = memoryview(target.view(-1).view(torch.uint8).numpy())
            done = 0
            while done < len(view):
                read = f.readinto(view[done:])
                if not read:
                    raise ValueError(f"{path} ends inside tensor {key}")
                done += read
    if other:
        with safe_open(str(path), framework="pt") as handle:
            for key in other:
                targets[key].copy_(handle.get_tensor(key))


def _readable_in_place(target: torch.Tensor, info: dict, nbytes: int) -> bool:
    return (target.device.type == "cpu" and target.is_contiguous() and sys.byteorder == "little"
            and _DTYPES.get(info["dtype"]) == target.dtype and list(target.shape) == info["shape"]
            and target.numel() * target.element_size() == nbytes)


def save_policy(model, tokenizer, out_dir: Path) -> Path:
    """Save model + tokenizer as a loadable `from_pretrained` directory, atomically."""
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return Path(out_dir)
