"""Checks that run before a run dir is touched: everything that can fail on the user's input
(data files, hub ids, model directories, where the run goes) fails here, as one ConfigError.

Hub ids are checked against the local cache first; offline (`HF_HUB_OFFLINE=1`) an id that is
not cached is an error, online the hub is asked whether it exists.
"""

from __future__ import annotations

import os
from pathlib import Path

from loop.config import ConfigError, LoopConfig


def preflight(cfg: LoopConfig) -> None:
    """Model, tokenizer and data: load or locate each once, so round 1 cannot fail on them."""
    if cfg.model.name is not None:
        check_model_source(cfg.model.name, "model.name", marker="config.json")
    if cfg.model.tokenizer is not None:
        check_model_source(cfg.model.tokenizer, "model.tokenizer", marker=None)
    if cfg.data.task is None:  # built-in tasks are generated: nothing there can fail
        from loop.data import load_task_data

        load_task_data(cfg.data, cfg.seed, Path(os.devnull))


def check_model_source(value: str, field: str, marker: str | None) -> None:
    """`value` is a local directory (holding `marker`, when given) or a hub id we can get."""
    local = Path(value).expanduser()
    if local.exists():
        if not local.is_dir() or not any(local.iterdir()) or (marker and not (local / marker).is_file()):
            what = f"no {marker}" if marker else "empty"
            raise ConfigError(f"{field}: {value!r} is not a saved model directory ({what}); give a directory "
                              "written by save_pretrained, or a hub id such as Qwen/Qwen2.5-0.5B-Instruct")
        return
    from huggingface_hub import constants, model_info, snapshot_download
    from huggingface_hub.errors import HFValidationError

    try:
        snapshot_download(value, local_files_only=True)
        return  # in the local cache
    except HFValidationError:
        raise ConfigError(f"{field}: {value!r} is neither an existing directory nor a valid hub id "
                          "(org/name); fix the path or the id") from None
    except Exception:  # not cached: ask the hub, unless we are told to stay offline
        pass
    if constants.HF_HUB_OFFLINE:
        raise ConfigError(f"{field}: {value!r} is not in the local hub cache and HF_HUB_OFFLINE is set; "
                          f"download it first (`hf download {value}`) or give a local directory") from None
    try:
        model_info(value, timeout=15)
    except Exception as err:
        reason = " ".join(str(err).split())[:160] or type(err).__name__
        raise ConfigError(f"{field}: cannot find {value!r} on the Hugging Face hub ({reason}); check the id "
                          "and the network, or give a local directory") from None
