"""`loop rescore RUN --rewards other.yaml --as NAME`: what another reward configuration would
have kept, round by round, from the rollouts a run already generated.

Nothing is generated or trained. For every round with a `scored.parquet`, the stored rollouts
are scored again under `other.yaml`'s `rewards` (and, if given, its `update` filter settings,
merged onto the run's), the run's update algorithm decides which samples it would use (the
same rule as in the run: RFT's threshold/dedup/K cap, DPO's pairs, GRPO's signal prompts), and
that decision is compared with the original run's on the very same samples. The result is a
sibling run dir `runs_dir/NAME`, which `loop compare` and W&B read like any run:

    runs/NAME/
      config.yaml    the run's config with the new rewards/update, name NAME
      rescore.json   where it came from
      metrics.jsonl  per round: reward/<name>/mean, filter/stack/accept_rate, train/examples,
                     rescore/original_accept_rate, rescore/agreement, rescore/both_keep,
                     rescore/either_keep, rescore/only_original, rescore/only_rescored,
                     rescore/jaccard, rescore/kappa (Cohen's, of keep/drop per sample)
      round_NNN/scored.parquet   the new scores, plus `kept/original` and `kept/rescored`

STaR's rationalizations are new generations, so a rescored STaR run compares its RFT part.
"""

from __future__ import annotations

import math
from pathlib import Path

from datasets import Dataset

from loop.config import ConfigError, LoopConfig, read_yaml_file, to_dict, validate
from loop.preflight import check_wandb_credentials
from loop.scoring import score
from loop.rundir import RunDir, RunState
from loop.tracking import make_tracker
from policies.atomic import save_parquet, write_json, write_yaml
from policies.judges import build_rewards
from policies.schema import ACCEPT_RATE
from policies.updates.dpo import build_pairs
from policies.updates.grpo import signal_prompts, trl_totals
from policies.updates.rft import select_accepted
from policies.tables import ScoredRollouts, read_parquet

CHANGEABLE = ("rewards", "update")  # what a rescore may change; everything else is the run's


def rescore_config(run: RunDir, rewards_file: str | Path, name: str) -> LoopConfig:
    """The run's config with `rewards_file`'s rewards (and update settings), named `name`.
    Raises ConfigError (nothing written) for a missing run or file, or a key it cannot honour."""
    raw = run.read_config()
    path = Path(rewards_file)
    other = read_yaml_file(path, "--rewards file") or {}
    if not isinstance(other, dict) or "rewards" not in other:
        raise ConfigError(f"{path}: expected a mapping with a `rewards:` list (and optionally `update:`)")
    extra = sorted(set(other) - set(CHANGEABLE))
    if extra:
        raise ConfigError(f"{path}: rescore changes only {' and '.join(CHANGEABLE)}; remove {', '.join(extra)} "
                          "(the rollouts are the run's, so nothing else can differ)")
    update = other.get("update") or {}
    if not isinstance(update, dict):
        raise ConfigError(f"{path}: `update:` must be a mapping of update settings, e.g. {{threshold: 1.0}}")
    raw["rewards"] = other["rewards"]
    raw["update"] = {**(raw["update"] if isinstance(raw.get("update"), dict) else {}), **update}
    raw["name"], raw["runs_dir"] = name, str(run.path.parent)
    cfg = validate(raw)
    if any(s.name == "judge" and s.args.get("backend") == "policy" for s in cfg.rewards):
        raise ConfigError(f"{path}: a judge with backend: policy needs each round's generator loaded; "
                          "rescore with backend: hf (a checkpoint path) or openai instead")
    if cfg.run_dir.resolve() == run.path.resolve():
        raise ConfigError(f"--as {name}: that is the run itself; pick a new name")
    if RunDir(cfg.run_dir).exists() or cfg.run_dir.exists():
        raise ConfigError(f"--as {name}: {cfg.run_dir} already exists; pick another name or remove it")
    check_wandb_credentials(cfg)  # the rescored run logs to W&B like its source
    return cfg


def kept_mask(scored_table: Dataset, cfg: LoopConfig) -> list[bool]:
    """Per sample: would `cfg`'s update algorithm use it? The rule the run's filter phase applies."""
    scored = ScoredRollouts.of(scored_table)
    update, n = cfg.update, len(scored)
    if update.algorithm == "dpo":
        column = "reward" if update.dpo.score is None else f"reward/{update.dpo.score}"
        pairs, _ = build_pairs(scored, column, update.dpo.max_pairs_per_prompt, update.dpo.min_margin)
        used = {(p["prompt_id"], p[side].strip()) for p in pairs for side in ("chosen", "rejected")}
        return [(pid, c.strip()) in used for _, pid, c in scored.rows(["prompt_id", "completion"])]
    if update.algorithm == "grpo":
        weights = {spec.key: spec.weight for spec in cfg.rewards}
        prompt_ids = scored.column("prompt_id")
        keep = set(signal_prompts(prompt_ids, trl_totals(scored, weights))) if update.grpo.drop_all_equal \
            else set(prompt_ids)
        return [pid in keep for pid in prompt_ids]
    threshold = update.rest.thresholds[0] if update.algorithm == "rest" else update.threshold
    kept, _ = select_accepted(scored, threshold, update.max_per_prompt, update.dedup, update.difficulty)
    mask = [False] * n
    for i in kept:
        mask[i] = True
    return mask


def agreement(original: list[bool], rescored: list[bool]) -> dict[str, float]:
    """How two keep/drop decisions over the same samples agree (shares of all samples)."""
    from sklearn.metrics import cohen_kappa_score

    n = max(len(original), 1)
    both = sum(a and b for a, b in zip(original, rescored))
    either = sum(a or b for a, b in zip(original, rescored))
    same = sum(a == b for a, b in zip(original, rescored))
    # kappa is undefined when both decisions are constant (every sample kept, or none)
    constant = len(set(original)) == 1 and len(set(rescored)) == 1
    kappa = float("nan") if constant else float(cohen_kappa_score(original, rescored))
    return {"rescore/agreement": same / n, "rescore/both_keep": both / n, "rescore/either_keep": either / n,
            "rescore/only_original": (sum(original) - both) / n, "rescore/only_rescored": (sum(rescored) - both) / n,
            "rescore/jaccard": both / either if either else float("nan"), "rescore/kappa": kappa}


def rescore_round(scored_path: Path, source_cfg: LoopConfig, cfg: LoopConfig, rewards) -> tuple[Dataset, dict]:
    """One round: new scores for the stored rollouts, both filters' decisions, and the metrics."""
    original = read_parquet(str(scored_path))
    original_kept = kept_mask(original, source_cfg)
    rollout_columns = [c for c in original.column_names
                       if not (c in ("reward", "rejected_by") or c.startswith(("reward/", "reason/")))]
    rescored, metrics = score(original.select_columns(rollout_columns), rewards)
    new_kept = kept_mask(rescored, cfg)
    metrics |= {ACCEPT_RATE: sum(new_kept) / max(len(new_kept), 1), "train/examples": float(sum(new_kept)),
                "rescore/original_accept_rate": sum(original_kept) / max(len(original_kept), 1)}
    metrics |= agreement(original_kept, new_kept)
    rescored = rescored.add_column("kept/original", original_kept).add_column("kept/rescored", new_kept)
    return rescored, metrics


def rescore(source: RunDir, cfg: LoopConfig, console) -> RunDir:
    """Write the sibling run `cfg.run_dir` and log each round to W&B (same group as the source)."""
    source_cfg = validate(source.read_config())
    rounds = sorted(int(p.parent.name.removeprefix("round_")) for p in source.path.glob("round_*/scored.parquet"))
    if not rounds:
        raise ConfigError(f"{source.path} has no scored rounds yet (no round_NNN/scored.parquet)")
    import datasets

    datasets.disable_progress_bars()  # one line per round is the report
    target = RunDir(cfg.run_dir)
    target.lock()
    try:
        write_yaml(target.config_file, to_dict(cfg))
        write_json(target.path / "rescore.json", {"source": str(source.path.resolve()), "rounds": rounds})
        tracker = make_tracker(cfg.tracking, cfg.name, target.path, {"rescore.source": str(source.path)}, None)
        rewards = build_rewards(cfg.rewards)
        try:
            for r in rounds:
                rescored, metrics = rescore_round(source.round_dir(r) / "scored.parquet", source_cfg, cfg, rewards)
                save_parquet(rescored, target.round_dir(r) / "scored.parquet")
                target.save_phase_metrics(r, "rescore", metrics)
                record = target.round_metrics(r)
                target.append_round_metrics(record)
                tracker.log(record, step=r)
                console.print(_line(record))
        finally:
            tracker.finish()
        target.save_state(RunState(round=rounds[-1], phase="rescore", done=True,
                                   generator_id=source.load_state().generator_id, history=[f"{r}/rescore" for r in rounds]))
    finally:
        target.unlock()
    return target


def _line(record: dict) -> str:
    kappa = record["rescore/kappa"]
    return (f"round {record['round']} | accept {record[ACCEPT_RATE]:.2f} (original "
            f"{record['rescore/original_accept_rate']:.2f}) | agreement {record['rescore/agreement']:.2f} | "
            f"both keep {record['rescore/both_keep']:.2f} | either {record['rescore/either_keep']:.2f} | "
            f"kappa {'-' if math.isnan(kappa) else f'{kappa:.2f}'}")
