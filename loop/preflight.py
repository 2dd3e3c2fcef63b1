"""Checks that run before a run dir is touched: everything that can fail on the user's input
(data files, hub ids, model directories, W&B credentials, where the run goes) fails here, as
one ConfigError.

Hub ids are checked against the local cache first; offline (`HF_HUB_OFFLINE=1`) an id that is
not cached is an error, online the hub is asked whether it exists.
"""

from __future__ import annotations

import os
from pathlib import Path

from loop.config import ConfigError, LoopConfig
from policies.engines.config import REMOTE


def preflight(cfg: LoopConfig) -> None:
    """Models, tokenizers, data and tracking: locate each once, so round 1 cannot fail on them."""
    for field, value, marker in model_sources(cfg):
        check_model_source(value, field, marker)
    data = None
    if cfg.data.task is None:  # built-in tasks are generated: nothing there can fail
        from loop.data import load_task_data

        data = load_task_data(cfg.data, cfg.seed, Path(os.devnull))
    if cfg.model.tiny is not None and cfg.model.tiny.arch == "gpt2":
        check_positions(cfg, data)
    check_wandb_credentials(cfg)


def model_sources(cfg: LoopConfig) -> list[tuple[str, str, str | None]]:
    """(field, hub id or path, file a model directory must hold) of every model the run loads."""
    sources = [("model.name", cfg.model.name, "config.json"), ("model.tokenizer", cfg.model.tokenizer, None)]
    if cfg.teacher is not None and cfg.teacher.engine not in REMOTE:  # a server names its own models
        sources += [("teacher.model", cfg.teacher.model, "config.json"), ("teacher.tokenizer", cfg.teacher.tokenizer, None)]
    if cfg.update.algorithm == "gkd":
        sources.append(("update.gkd.teacher", cfg.update.gkd.teacher, "config.json"))
    if cfg.update.algorithm == "cai":
        sources.append(("update.cai.critic", cfg.update.cai.critic, "config.json"))
        if cfg.update.cai.pairs == "judge" and cfg.update.cai.judge.get("backend") == "hf":
            sources.append(("update.cai.judge.model", cfg.update.cai.judge.get("model"), "config.json"))
    for i, spec in enumerate(cfg.rewards):
        if spec.name == "judge" and spec.args.get("backend") == "hf":
            sources.append((f"rewards.{i}.args.model", spec.args.get("model"), "config.json"))
    return [(field, value, marker) for field, value, marker in sources if isinstance(value, str)]


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


def check_positions(cfg: LoopConfig, data) -> None:
    """A tiny GPT-2 has one learned embedding per position: the longest prompt plus the longest
    generation (and each seed example, up to update.max_length) must fit, or round 0 fails.
    Its tokenizer has one token per character, so lengths are counted in characters."""
    if data is None:  # a built-in task: its problems, as the run will generate them
        from loop.tasks import generate_task

        splits = generate_task(cfg.data.task, cfg.seed)
        prompts = [p.prompt for split in splits.values() for p in split]
        seeds = [(p.prompt, p.rationale) for p in splits.get("seed", [])]
    else:
        prompts = data.train["prompt"][:] + data.eval["prompt"][:]
        seeds = list(zip(data.seed["prompt"][:], data.seed["rationale"][:])) if data.seed is not None else []
    template = cfg.data.prompt_template
    longest = max(len(template.replace("{prompt}", p)) for p in prompts)
    positions = cfg.model.tiny.max_position_embeddings
    generated = max(cfg.rollout.max_new_tokens, cfg.eval.max_new_tokens or 0)
    needed = longest + generated + 1  # trained on with its end-of-sequence token
    if needed > positions:
        raise ConfigError(f"model.tiny.max_position_embeddings: {positions} positions, but the longest prompt "
                          f"({longest} tokens), {generated} new tokens and an end token need {needed}; raise it, "
                          "or lower rollout.max_new_tokens / eval.max_new_tokens")
    if seeds:
        example = min(cfg.update.max_length, max(len(template.replace("{prompt}", p)) + len(r) + 1 for p, r in seeds))
        if example > positions:
            raise ConfigError(f"model.tiny.max_position_embeddings: {positions} positions, but seed examples "
                              f"(prompt + rationale) take up to {example} tokens; raise it, or lower update.max_length")


def check_wandb_credentials(cfg: LoopConfig) -> None:
    """`tracking.mode: online` needs W&B credentials where wandb looks for them (the environment,
    the netrc entry of its base URL, its settings file); without, `wandb.init` fails mid-start."""
    tracking = cfg.tracking
    if not tracking.wandb or tracking.mode != "online":
        return
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return
    try:
        from wandb.sdk import wandb_setup
        from wandb.sdk.lib.wbauth import read_netrc_auth
    except ImportError:  # a wandb that reads credentials elsewhere: let wandb.init decide
        return
    try:
        settings = wandb_setup.singleton().settings
        if settings.api_key or read_netrc_auth(host=settings.base_url):
            return
    except Exception:  # a malformed netrc or settings file is no credential either
        pass
    raise ConfigError("tracking.mode: online needs W&B credentials and none are set; set WANDB_API_KEY "
                      "(or run `wandb login`), or set tracking.mode: offline (sync later with `wandb sync`)")
