"""LoRA through `peft`: wrap a model in an adapter for training; save the adapter, then merge.

Every round's policy is saved twice: the adapter alone (`round_NNN/adapter`, small, what you
ship or load with `PeftModel.from_pretrained` on top of the round's starting policy) and the
adapter merged into the weights (`round_NNN/checkpoint`). The generator swaps to the *merged*
policy: the in-place swap copies plain tensors into the running engine, generation runs at
full speed with no adapter matmuls, and the next round's adapter (and DPO's reference, the
round's starting policy) sits on plain weights, so `init: base`/`previous` mean what they say.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from policies.atomic import atomic_dir


def add_adapter(model, settings: dict[str, Any]):
    from peft import LoraConfig, get_peft_model

    return get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **settings))


def save_adapter_and_merge(model, tokenizer, adapter_dir: Path):
    """Save the adapter atomically; return the base model with the adapter merged in."""
    with atomic_dir(adapter_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return model.merge_and_unload()
