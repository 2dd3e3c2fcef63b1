"""The run's typed configuration: one pydantic model per section, loaded from one YAML file.

`load_config("configs/demo.yaml", ["rollout.n=8", "rounds=3"])` reads the YAML, applies dotted
overrides (values parsed as YAML), and validates. Unknown keys and bad values are rejected with
the field's dotted path and what is allowed, before anything is written.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from loop.monitor.config import MonitorConfig
from loop.distill import TeacherConfig
from loop.growth import GrowthConfig
from loop.retention import StorageConfig
from loop.threads import ThreadsConfig
from policies.engines.config import RolloutConfig
from policies.model_config import ModelConfig
from policies.updates.config import SFT_STYLE, UpdateConfig
from rewards.registry import RewardSpec, build_reward, reward_names
from rewards.section import ConfigError, Section, check_template, parse_yaml, read_yaml_file


class TaskConfig(Section):
    """A procedurally generated task (the demos): problems with worked solutions."""

    kind: Literal["arithmetic", "code"] = "arithmetic"
    train_size: int = Field(2000, ge=1)
    eval_size: int = Field(200, ge=1)
    seed_size: int = Field(64, ge=0)
    num_operands: int = Field(3, ge=2, le=5)
    max_operand: int = Field(99, ge=1)
    ops: str = Field("+-", pattern=r"^[+\-*]+$", description="Operators to draw from.")
    # Easy -> hard (arithmetic): operand counts from num_operands to max_operands, each problem
    # tagged with its `difficulty` (= operand count); the seed set stops at seed_max_operands.
    max_operands: int | None = Field(None, ge=2, le=16, description="Train/eval problems have num_operands..max_operands operands.")
    seed_max_operands: int | None = Field(None, ge=2, description="Seed problems have at most this many operands.")
    curriculum: bool = Field(False, description="Round r draws prompts of difficulty <= seed_max_operands + r only.")
    curriculum_levels: int | None = Field(None, ge=1, description="With curriculum: draw only the hardest this many "
                                          "levels of the pool (1 = the new level alone); null = every level up to it.")
    curriculum_advance_at: float | None = Field(
        None, gt=0, le=1, description="With curriculum: move one level harder only after a round in which at least this "
        "share of the samples at the pool's hardest level reached update.threshold (a level is learned before the next "
        "is asked); null = one level harder every round.")
    solution: Literal["chain", "rewrite", "aligned"] = Field(
        "chain", description="Worked-solution format (arithmetic): `chain` (one `a+b=c` step per line), `rewrite` "
        "(each step also carries the operands still to add: `3+5=8;+2+7`, so every step reads only the line above), "
        "`aligned` (rewrite on a fixed-width field, the problem then filler letters: each step reads the line above at a "
        "fixed offset; one-digit operands).")

    @model_validator(mode="after")
    def _difficulty_range(self) -> "TaskConfig":
        if self.solution != "chain" and self.kind != "arithmetic":
            raise ValueError(f"solution: {self.solution} is a format of arithmetic solutions; drop it for kind: code")
        if self.solution == "aligned" and self.max_operand > 9:
            raise ValueError("solution: aligned needs one-digit operands (max_operand <= 9)")
        for key in ("curriculum_levels", "curriculum_advance_at"):
            if getattr(self, key) is not None and not self.curriculum:
                raise ValueError(f"{key} shapes the curriculum: set curriculum: true (or drop {key})")
        if self.max_operands is None:
            if self.seed_max_operands is not None or self.curriculum:
                raise ValueError("seed_max_operands and curriculum need max_operands (the hardest level)")
            return self
        if self.kind != "arithmetic":
            raise ValueError("max_operands (difficulty levels) is for kind: arithmetic")
        seed_max = self.seed_max_operands or self.max_operands
        if not self.num_operands <= seed_max <= self.max_operands:
            raise ValueError(f"need num_operands <= seed_max_operands <= max_operands, got "
                             f"{self.num_operands}, {seed_max}, {self.max_operands}")
        return self

    @model_validator(mode="after")
    def _enough_problems(self) -> "TaskConfig":
        total = self.train_size + self.eval_size + self.seed_size
        space = sum(self._space(k) for k in range(self.num_operands, (self.max_operands or self.num_operands) + 1))
        if total > space // 2:  # keep sampling without replacement fast
            raise ValueError(f"{total} unique problems asked of a space of {space}; "
                             "raise max_operand or num_operands, or lower the sizes")
        return self

    def _space(self, operands: int) -> int:
        """How many distinct problems have this many operands."""
        steps = operands - 1  # a code problem's first operand is x: one fewer number
        numbers = self.max_operand ** steps if self.kind == "code" else (self.max_operand + 1) ** operands
        return numbers * len(set(self.ops)) ** steps


class ColumnMap(Section):
    prompt: str = "prompt"
    answer: str | None = Field("answer", description="null: no reference answers (code tests, majority vote).")
    rationale: str | None = None
    extra: dict[str, str] = Field({}, description="Reward argument -> dataset column, e.g. {tests: test_list}.")


class DataConfig(Section):
    task: TaskConfig | None = None
    path: str | None = Field(None, description="Local .jsonl/.json/.parquet of training prompts.")
    dataset: str | None = Field(None, description="Hugging Face dataset id, loaded with datasets.load_dataset.")
    subset: str | None = None
    split: str = "train"
    eval_path: str | None = None
    eval_split: str | None = Field(None, description="Split of `dataset` held out for evaluation.")
    eval_size: int = Field(200, ge=1, description="Held-out size when carved from the training split.")
    seed_path: str | None = Field(None, description="Labeled problems with rationales for the initial SFT.")
    columns: ColumnMap = ColumnMap()
    prompts_per_round: int = Field(256, ge=1)
    prompt_template: str = Field("{prompt}", description="Text around each problem; {prompt} marks where it goes.")

    @field_validator("prompt_template")
    @classmethod
    def _marks_the_problem(cls, template: str) -> str:
        return check_template(template, required=("prompt",))

    @model_validator(mode="after")
    def _one_source(self) -> "DataConfig":
        sources = [s for s in (self.task, self.path, self.dataset) if s is not None]
        if len(sources) != 1:
            raise ValueError("set exactly one of `data.task`, `data.path`, `data.dataset`")
        for key in ("subset", "eval_split"):  # read only from a hub dataset: elsewhere they would do nothing
            if getattr(self, key) is not None and self.dataset is None:
                raise ValueError(f"data.{key} picks from a hub dataset (data.dataset); drop it"
                                 + (", or give a held-out file as data.eval_path" if key == "eval_split" else ""))
        for key in ("path", "eval_path", "seed_path"):
            value = getattr(self, key)
            if value is not None and not Path(value).expanduser().exists():
                raise ValueError(f"data.{key}: file {value!r} does not exist")
            if value is not None and not Path(value).expanduser().is_file():
                raise ValueError(f"data.{key}: {value!r} is not a file; give a .jsonl, .json or .parquet file")
        return self


class EvalConfig(Section):
    verifier: str = Field("math", description="Reward whose score >= 1 counts as correct (a reward in `rewards` or a built-in).")
    k: int = Field(4, ge=1, description="Samples per problem for pass@k / maj@k; 1 = greedy only.")
    temperature: float = Field(1.0, ge=0.0)
    max_new_tokens: int | None = Field(None, ge=1, description="Defaults to rollout.max_new_tokens.")


class ControlConfig(Section):
    """The baseline: the loop's optimizer steps spent on the seed set alone."""

    enabled: bool = False


class TrackingConfig(Section):
    wandb: bool = True
    project: str = "selfloop"
    group: str | None = None
    tags: list[str] = []
    mode: Literal["auto", "online", "offline"] = "auto"
    table_rows: int = Field(8, ge=0)


class LoopConfig(Section):
    name: str = "demo"
    runs_dir: str = "runs"
    seed: int = 0
    rounds: int = Field(3, ge=1)
    model: ModelConfig
    data: DataConfig
    rollout: RolloutConfig = RolloutConfig()
    rewards: list[RewardSpec] = Field(default_factory=lambda: [RewardSpec(name="math")], min_length=1)
    update: UpdateConfig = UpdateConfig()
    eval: EvalConfig = EvalConfig()
    control: ControlConfig = ControlConfig()
    tracking: TrackingConfig = TrackingConfig()
    storage: StorageConfig = StorageConfig()
    monitor: MonitorConfig = MonitorConfig()
    threads: ThreadsConfig = ThreadsConfig()
    teacher: TeacherConfig | None = Field(None, description="Distillation: a stronger model writes the rollouts.")
    growth: GrowthConfig | None = Field(None, description="New problems written between rounds (Self-Instruct).")

    @model_validator(mode="after")
    def _consistent(self) -> "LoopConfig":
        if self.update.seed_epochs > 0 and self.data.seed_path is None and self.data.task is None:
            raise ValueError("update.seed_epochs > 0 needs labeled examples: set data.seed_path")
        if self.control.enabled and self.data.seed_path is None and self.data.task is None:
            raise ValueError("control.enabled needs a seed set: set data.seed_path")
        if self.update.replay_fraction > 0 and self.data.seed_path is None and not (self.data.task and self.data.task.seed_size):
            raise ValueError("update.replay_fraction needs a seed set to replay: set data.seed_path")
        keys = [spec.key for spec in self.rewards]
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        if repeated:
            raise ValueError(f"rewards: {', '.join(repeated)} appears twice; give one a `label`")
        _check_update(self.update, self.rollout, self.rewards)
        if self.growth is not None:
            task = self.data.task
            if self.data.columns.extra or (task is not None and (task.kind == "code" or task.max_operands)):
                raise ValueError("growth: new problems have only a prompt and an answer; tasks with extra columns "
                                 "(code tests, difficulty levels) cannot grow their prompt set")
            if self.growth.author == "teacher" and self.teacher is None:
                raise ValueError("growth.author: teacher needs a `teacher:` section (its model writes the problems)")
        if self.eval.verifier not in keys and self.eval.verifier not in reward_names():
            raise ValueError(f"eval.verifier: {self.eval.verifier!r} is neither a reward of this run "
                             f"({', '.join(keys)}) nor a built-in ({', '.join(reward_names())})")
        _check_verifier_builds(self.eval.verifier, keys)
        _check_tests_columns(self.rewards, self.eval.verifier, self.data)
        _check_positions(self)
        return self

    @field_validator("growth")
    @classmethod
    def _growth_requests(cls, growth: GrowthConfig | None) -> GrowthConfig | None:
        if growth is None:
            return growth
        try:
            check_template(growth.template, required=("examples",))
        except ValueError as err:
            raise ValueError(f"growth.template: {err}") from None
        if not growth.stop:
            raise ValueError("growth.stop: an empty stop string ends every proposal before it starts; "
                             "give the text that ends one, e.g. \"\\n\\n\"")
        return growth

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        # The name is a directory under runs_dir: no separators, no `..`, nothing absolute or hidden.
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}", name):
            raise ValueError(f"{name!r} is not a usable run name: use letters, digits and . _ + - "
                             "(starting with a letter or digit, at most 100 characters), e.g. demo_2")
        return name

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.name


def _check_verifier_builds(verifier: str, reward_keys: list[str]) -> None:
    """A built-in verifier that is not one of the run's rewards is built without arguments."""
    if verifier in reward_keys:
        return
    try:
        build_reward(verifier)
    except (TypeError, ValueError) as err:
        raise ValueError(f"eval.verifier: {verifier!r} needs arguments ({' '.join(str(err).split())[:160]}); "
                         f"add it to `rewards` with its args and set eval.verifier to its name") from None


def _check_tests_columns(rewards: list[RewardSpec], verifier: str, data: DataConfig) -> None:
    """The code reward reads its tests from a column: the data must provide it."""
    provided = ({"tests"} if data.task.kind == "code" else set()) if data.task else set(data.columns.extra)
    needs = {f"rewards[{spec.key}]": spec.args.get("tests_column", "tests") for spec in rewards if spec.name == "code"}
    if verifier == "code" and verifier not in [spec.key for spec in rewards]:
        needs["eval.verifier"] = "tests"
    for where, column in needs.items():
        if column not in provided:
            raise ValueError(f"{where}: the code reward reads tests from column {column!r}, which the data does "
                             f"not provide; map one with data.columns.extra: {{{column}: <your column>}}")


def _check_positions(cfg: LoopConfig) -> None:
    """A tiny model's context holds the prompt and every token the policy is asked to write
    (`loop/preflight.py` adds the longest prompt once the data is read)."""
    tiny = cfg.model.tiny
    if tiny is None:
        return
    lengths = {"rollout.max_new_tokens": cfg.rollout.max_new_tokens, "eval.max_new_tokens": cfg.eval.max_new_tokens}
    if cfg.update.algorithm == "gkd":
        lengths["update.gkd.max_new_tokens"] = cfg.update.gkd.max_new_tokens
    if cfg.update.algorithm == "cai" and cfg.update.cai.critic is None:  # the policy writes critiques
        lengths["update.cai.max_new_tokens"] = cfg.update.cai.max_new_tokens
    if cfg.growth is not None and cfg.growth.author == "policy":
        lengths["growth.max_new_tokens"] = cfg.growth.max_new_tokens
    for field, tokens in lengths.items():
        if tokens is not None and tokens >= tiny.max_position_embeddings:
            raise ValueError(f"{field}: {tokens} new tokens do not fit model.tiny.max_position_embeddings = "
                             f"{tiny.max_position_embeddings} (the prompt needs positions too); lower {field} "
                             "or raise model.tiny.max_position_embeddings")


def _check_total_used(update: UpdateConfig, rewards: list[RewardSpec]) -> None:
    """Rewards that all weigh 0 make every total 0: fine for a gate-only filter that keeps
    whatever passes (threshold <= 0), never for an update that needs totals to differ."""
    if any(spec.weight != 0 for spec in rewards):
        return
    fix = "give the reward that judges the answer a weight (e.g. {name: math, weight: 1.0})"
    if update.algorithm in SFT_STYLE:
        field, thresholds = (("update.rest.thresholds", update.rest.thresholds) if update.algorithm == "rest"
                             else ("update.threshold", [update.threshold]))
        if max(thresholds) > 0:
            raise ValueError(f"rewards: every weight is 0, so every sample's total is 0 and none reaches "
                             f"{field} ({', '.join(f'{t:g}' for t in thresholds)}); {fix}")
    elif update.algorithm == "grpo" or (update.algorithm == "dpo" and update.dpo.score is None):
        raise ValueError(f"rewards: every weight is 0, so the samples of a prompt all score the same total and "
                         f"{update.algorithm} learns nothing from them; {fix}")


def _check_update(update: UpdateConfig, rollout: RolloutConfig, rewards: list[RewardSpec]) -> None:
    """What the update needs of the other sections."""
    reward_keys = [spec.key for spec in rewards]
    _check_total_used(update, rewards)
    if update.dpo.score is not None and update.dpo.score not in reward_keys:
        raise ValueError(f"update.dpo.score: {update.dpo.score!r} is not a reward of this run ({', '.join(reward_keys)})")
    if update.algorithm == "cai" and update.cai.pairs == "judge" and rollout.n < 2:
        raise ValueError("cai.pairs: judge compares two samples of each prompt: set rollout.n >= 2")
    if update.algorithm == "grpo":
        if rollout.n < 2:
            raise ValueError("grpo compares samples of one prompt: set rollout.n >= 2")
        per_step = update.grpo.prompts_per_step * rollout.n
        if per_step % update.num_processes:
            raise ValueError(f"grpo: prompts_per_step x rollout.n = {per_step} completions per step must split "
                             f"evenly over num_processes = {update.num_processes}")
        if any(spec.name == "judge" and spec.args.get("backend") == "policy" for spec in rewards):
            raise ValueError("grpo: a judge with backend: policy needs the loop's engine, which the GRPO "
                             "trainer does not have; use backend: hf or openai, or algorithm: dpo (Self-Rewarding)")


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply `a.b.c=value` overrides; the value is parsed as YAML (`3`, `true`, `[a, b]`)."""
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set rollout.n=8")
        node = raw
        *parents, leaf = key.strip().split(".")
        if not all(parents) or not leaf:
            raise ConfigError(f"--set {item!r}: empty part in the key; write it like rollout.n=8")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {part!r} is not a section")
        node[leaf] = parse_yaml(value, f"--set {item!r}")
    return raw


def validate(raw: dict) -> LoopConfig:
    """Strict: `rounds: true` or `rounds: "3"` is an error, not 1 or 3 (YAML says what a value is)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"expected a mapping of sections at the top level, got {type(raw).__name__}")
    _refuse_non_finite(raw, "")
    try:
        return LoopConfig.model_validate(raw, strict=True)
    except ValidationError as err:
        raise ConfigError(_explain(err)) from None


def _refuse_non_finite(node: Any, path: str) -> None:
    """`.nan` and `.inf` anywhere (typed fields and free-form args alike): NaN compares false with
    everything, so a NaN weight or threshold would silently keep or drop every sample."""
    if isinstance(node, float) and not math.isfinite(node):
        raise ConfigError(f"invalid config: {path}: {node} is not a finite number; give a finite value")
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        _refuse_non_finite(value, f"{path}.{key}" if path else str(key))


def _explain(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"] if not str(p).startswith("function-after"))
        msg = " ".join(e["msg"].removeprefix("Value error, ").split())  # one line, whatever the library wrote
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see the config reference in README.md)"
        elif e["type"].endswith("_type") and "input" in e:
            msg += f", got {type(e['input']).__name__} {e['input']!r}"[:120]
        # a validator that said where: "<field>.<key>: ..." under its own section, or any field at the top
        names_field = msg.startswith((f"{path}.", f"{path}:")) if path else bool(re.match(r"[\w.]+: ", msg))
        lines.append(msg if names_field else f"{path or 'config'}: {msg}")
    return "invalid config: " + "; ".join(lines)


def load_config(path: str | Path, overrides: list[str] = ()) -> LoopConfig:
    raw = read_yaml_file(path) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level (e.g. `rounds: 3`)")
    return validate(apply_overrides(raw, list(overrides)))


def to_dict(cfg: LoopConfig) -> dict:
    return cfg.model_dump(mode="json")


def diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted paths whose values differ, as `path: old -> new`."""
    changes = []
    for key in sorted(set(old) | set(new)):
        a, b, path = old.get(key), new.get(key), f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            changes += diff(a, b, path + ".")
        elif a != b:
            changes.append(f"{path}: {a!r} -> {b!r}")
    return changes


def flatten(cfg: dict, prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": 1}}` -> `{"a.b": 1}`: the flat view W&B compares runs by."""
    flat = {}
    for key, value in cfg.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
