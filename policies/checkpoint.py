"""Checkpoints: save a policy atomically; swap its weights into a live model in place.

The swap is what makes the next round's generator the new checkpoint without building a new
engine: the existing parameters take the new tensors (on CPU by pointing them at the file's
memory map, as `from_pretrained` does; on an accelerator by copying), so the modules, their
ties and hooks, and the process itself survive.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
from safetensors import safe_open

from policies.atomic import atomic_dir


@torch.no_grad()
def swap_weights(model: torch.nn.Module, checkpoint_dir: Path) -> float:
    """Make the checkpoint's weights `model`'s own, in place; returns seconds taken.

    Keys are checked before anything changes, so a checkpoint of another model leaves this one
    untouched. The parameters stay the same objects (ties, hooks and references survive). A CPU
    parameter of the file's dtype is pointed at the file's memory map (copy-on-write, as
    `from_pretrained` loads it): nothing is copied, pages map in as they are first read. Any
    other (on an accelerator, or of another dtype) is copied from that map. Checkpoints are
    written once into a new directory (`save_policy`), so a mapped file never changes under us.
    """
    start = time.perf_counter()
    files = sorted(Path(checkpoint_dir).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no *.safetensors weights in {checkpoint_dir}")
    targets = model.state_dict()  # every name, tied aliases included
    headers = {f: _read_header(f) for f in files}
    _check_fits(model, targets, headers, checkpoint_dir)
    parameters = dict(model.named_parameters(remove_duplicate=False))
    for path, (header, data_start) in headers.items():
        entries = {key: info for key, info in header.items() if key != "__metadata__"}
        if sys.byteorder != "little" or any(info["dtype"] not in _DTYPES for info in entries.values()):
            with safe_open(str(path), framework="pt") as handle:  # what we cannot view byte for byte
                for key in entries:
                    targets[key].copy_(handle.get_tensor(key))
            continue
        mapped = torch.UntypedStorage.from_file(str(path), shared=False, nbytes=path.stat().st_size)
        for key, info in entries.items():
            tensor = _view(mapped, data_start, info)
            live = parameters.get(key)
            if live is not None and live.device.type == "cpu" and live.dtype == tensor.dtype:
                live.data = tensor
            else:
                targets[key].copy_(tensor)
    return time.perf_counter() - start


def _check_fits(model, targets: dict[str, torch.Tensor], headers: dict, checkpoint_dir: Path) -> None:
    found = {key: info for header, _ in headers.values() for key, info in header.items() if key != "__metadata__"}
    tied = set(getattr(model, "_tied_weights_keys", None) or {})
    missing = [k for k in targets if k not in found and k not in tied]
    unexpected = [k for k in found if k not in targets]
    reshaped = [k for k, info in found.items() if k in targets and list(targets[k].shape) != info["shape"]]
    if missing or unexpected or reshaped:
        raise ValueError(f"checkpoint {checkpoint_dir} does not fit the model: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}, other shape {reshaped[:5]}")


# safetensors' dtype codes for the dtypes a tensor can be viewed as byte for byte.
_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
           "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
           "BOOL": torch.bool}


def _read_header(path: Path) -> tuple[dict, int]:
    """The file's header and where its data starts (safetensors: u64 length, JSON, data)."""
    with open(path, "rb") as f:
        length = int.from_bytes(f.read(8), "little")
        return json.loads(f.read(length)), 8 + length


def _view(mapped: torch.UntypedStorage, data_start: int, info: dict) -> torch.Tensor:
    """One tensor of the file as a view of its memory map (a copy if its offset is misaligned)."""
    begin, end = info["data_offsets"]
    dtype = _DTYPES[info["dtype"]]
    raw = torch.empty(0, dtype=torch.uint8).set_(mapped, data_start + begin, (end - begin,))
    if (data_start + begin) % dtype.itemsize:
        raw = raw.clone()
    return raw.view(dtype).view(info["shape"])


def save_policy(model, tokenizer, out_dir: Path) -> Path:
    """Save model + tokenizer as a loadable `from_pretrained` directory, atomically."""
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return Path(out_dir)
