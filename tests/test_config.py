"""Tests for `loop/config.py`: every shipped config validates, `--set` overrides, and that bad
configs are rejected with the dotted path of the field at fault."""

from __future__ import annotations

import json

import pytest
import yaml

from pathlib import Path

from loop.config import ConfigError, LoopConfig, diff, flatten, load_config, to_dict, validate

REPO_ROOT = Path(__file__).resolve().parents[1]

CONFIGS = sorted((REPO_ROOT / "configs").glob("*.yaml"))
DEMO = REPO_ROOT / "configs" / "demo.yaml"


def write_config(tmp_path, raw: dict):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def minimal() -> dict:
    """The smallest valid config: a tiny model on a small built-in task."""
    return {"model": {"tiny": {"num_layers": 1}},
            "data": {"task": {"train_size": 20, "eval_size": 5, "seed_size": 2}}}


# --- shipped configs ------------------------------------------------------------------


def test_configs_dir_is_not_empty():
    assert len(CONFIGS) >= 2


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_config_loads_and_validates(path):
    cfg = load_config(path)
    assert isinstance(cfg, LoopConfig)
    # What the run dir saves (config.yaml) must load back to the same config on resume.
    assert validate(yaml.safe_load(yaml.safe_dump(to_dict(cfg)))) == cfg


# --- overrides ------------------------------------------------------------------------


def test_overrides_are_parsed_as_yaml():
    cfg = load_config(DEMO, ["rollout.n=8", "rounds=3", "tracking.wandb=false", 'rollout.stop=[a, "\\n"]',
                             "update.learning_rate=2.0e-5", "name=other"])
    assert cfg.rollout.n == 8
    assert cfg.rounds == 3
    assert cfg.tracking.wandb is False
    assert cfg.rollout.stop == ["a", "\n"]
    assert cfg.update.learning_rate == pytest.approx(2e-5)
    assert cfg.name == "other"


def test_override_leaves_the_rest_of_the_file_alone():
    base, changed = load_config(DEMO), load_config(DEMO, ["rollout.n=8"])
    assert diff(to_dict(base), to_dict(changed)) == ["rollout.n: 4 -> 8"]


def test_override_creates_a_missing_section(tmp_path):
    cfg = load_config(write_config(tmp_path, minimal()), ["eval.max_new_tokens=7", "update.star.rationalize=false"])
    assert cfg.eval.max_new_tokens == 7
    assert cfg.update.star.rationalize is False


@pytest.mark.parametrize(
    "override,expected",
    [
        ("rollout.n", "expected KEY=VALUE"),
        ("=3", "expected KEY=VALUE"),
        ("rounds.x=1", "'rounds' is not a section"),
    ],
)
def test_malformed_override_is_rejected(override, expected):
    with pytest.raises(ConfigError, match=expected):
        load_config(DEMO, [override])


# --- rejected configs -----------------------------------------------------------------


@pytest.mark.parametrize(
    "override,path",
    [
        ("rollout.nn=3", "rollout.nn"),
        ("rollout.temprature=0.5", "rollout.temprature"),
        ("update.star.hint=x", "update.star.hint"),
        ("model.tiny.layers=2", "model.tiny.layers"),
        ("foo=1", "foo"),
    ],
)
def test_unknown_key_is_rejected_with_its_dotted_path(override, path):
    with pytest.raises(ConfigError) as err:
        load_config(DEMO, [override])
    assert f"{path}: unknown key" in str(err.value)


@pytest.mark.parametrize(
    "override,field",
    [
        ("rollout.n=0", "rollout.n"),
        ("rollout.top_p=2", "rollout.top_p"),
        ("rollout.top_p=0", "rollout.top_p"),
        ("rollout.temperature=-1", "rollout.temperature"),
        ("rounds=0", "rounds"),
        ("update.algorithm=ppo", "update.algorithm"),
        ("update.max_per_prompt=0", "update.max_per_prompt"),
        ("eval.k=0", "eval.k"),
        ("data.task.num_operands=9", "data.task.num_operands"),
        ("model.tiny.arch=bert", "model.tiny.arch"),
        ("rewards=[]", "rewards"),
    ],
)
def test_bad_value_is_rejected_naming_the_field(override, field):
    with pytest.raises(ConfigError) as err:
        load_config(DEMO, [override])
    assert f"{field}: " in str(err.value)


def test_unknown_reward_name_is_rejected_with_the_builtins():
    with pytest.raises(ConfigError) as err:
        load_config(DEMO, ["rewards=[{name: nope}]"])
    message = str(err.value)
    assert "rewards.0.name" in message
    assert "unknown reward 'nope'" in message
    assert "math" in message  # the list of built-ins, so the user can fix the spelling


def test_nonexistent_model_path_is_rejected(tmp_path):
    raw = minimal() | {"model": {"name": "./nope"}}
    with pytest.raises(ConfigError, match=r"model: model path './nope' does not exist"):
        load_config(write_config(tmp_path, raw))


def test_existing_model_path_and_hub_id_are_accepted(tmp_path):
    assert load_config(DEMO, [f"model.name={tmp_path}"]).model.name == str(tmp_path)
    assert load_config(DEMO, ["model.name=org/model"]).model.name == "org/model"


@pytest.mark.parametrize("key", ["path", "eval_path", "seed_path"])
def test_missing_data_file_is_rejected(tmp_path, key):
    existing = tmp_path / "train.jsonl"
    existing.write_text('{"prompt": "1+1", "answer": "2"}\n')
    raw = minimal() | {"data": {"path": str(existing), key: str(tmp_path / "missing.jsonl")}}
    with pytest.raises(ConfigError) as err:
        load_config(write_config(tmp_path, raw))
    assert f"data.{key}: file" in str(err.value)
    assert "missing.jsonl" in str(err.value)


@pytest.mark.parametrize(
    "data",
    [{}, {"task": {"train_size": 20, "eval_size": 5}, "dataset": "org/data"}],
    ids=["no-source", "two-sources"],
)
def test_data_needs_exactly_one_source(tmp_path, data):
    with pytest.raises(ConfigError, match="set exactly one of"):
        load_config(write_config(tmp_path, minimal() | {"data": data}))


def test_task_larger_than_its_problem_space_is_rejected():
    with pytest.raises(ConfigError, match="data.task: .*unique problems"):
        load_config(DEMO, ["data.task.max_operand=1", "data.task.num_operands=2"])


def test_missing_config_file_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


# --- diff and flatten -----------------------------------------------------------------


@pytest.mark.parametrize(
    "old,new,expected",
    [
        ({"a": 1}, {"a": 1}, []),
        ({"a": 1}, {"a": 2}, ["a: 1 -> 2"]),
        ({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3}}, ["a.c: 2 -> 3"]),
        ({"a": {"b": 1}}, {"a": {"b": 1, "c": 3}}, ["a.c: None -> 3"]),
        ({"x": [1]}, {"x": [1, 2]}, ["x: [1] -> [1, 2]"]),
        ({"b": 1, "a": 1}, {"b": 2, "a": 2}, ["a: 1 -> 2", "b: 1 -> 2"]),  # sorted by path
        ({"a": {"b": 1}}, {"a": None}, ["a: {'b': 1} -> None"]),
    ],
)
def test_diff(old, new, expected):
    assert diff(old, new) == expected


@pytest.mark.parametrize(
    "nested,flat",
    [
        ({}, {}),
        ({"a": 1}, {"a": 1}),
        ({"a": {"b": {"c": 1}}, "d": [1, 2]}, {"a.b.c": 1, "d": [1, 2]}),
        ({"a": {}}, {}),
    ],
)
def test_flatten(nested, flat):
    assert flatten(nested) == flat


def test_flatten_of_a_config_has_dotted_keys():
    flat = flatten(to_dict(load_config(DEMO)))
    assert flat["rollout.n"] == 4
    assert flat["update.star.rationalize"] is True
    assert not any(isinstance(v, dict) for v in flat.values())


# --- values that would make a run silently wrong ---------------------------------------


@pytest.mark.parametrize("override,field", [
    ("rewards=[{name: math, weight: .nan}]", "rewards.0.weight"),
    ("rewards=[{name: math, gate: -.inf}]", "rewards.0.gate"),
    ("rollout.temperature=.inf", "rollout.temperature"),
    ("rollout.top_p=.nan", "rollout.top_p"),
    ("update.learning_rate=.inf", "update.learning_rate"),
    ("update.threshold=.nan", "update.threshold"),
    ("update.threshold=-.inf", "update.threshold"),
    ("update.rest.thresholds=[1.0, .inf]", "update.rest.thresholds.1"),
    ("eval.temperature=.nan", "eval.temperature"),
    ("update.cai.judge={backend: policy, temperature: .nan}", "update.cai.judge.temperature"),
    ("rewards=[{name: repetition, args: {max_share: .nan}}, {name: math}]", "rewards.0.args.max_share"),
])
def test_non_finite_numbers_are_refused_anywhere(override, field):
    with pytest.raises(ConfigError) as err:
        load_config(DEMO, [override])
    assert f"{field}: " in str(err.value) and "is not a finite number" in str(err.value)


def test_every_section_refuses_non_finite_numbers_when_built_directly():
    from policies.engines.config import RolloutConfig
    from policies.updates.config import UpdateConfig

    for build in (lambda: RolloutConfig(temperature=float("inf")), lambda: UpdateConfig(threshold=float("nan"))):
        with pytest.raises(ValueError, match="finite number"):
            build()


def test_duplicate_keys_are_refused_with_the_key_and_lines(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(DEMO.read_text() + "\nrounds: 1\n")
    with pytest.raises(ConfigError, match=r"duplicate key 'rounds' \(first given at line \d+\)"):
        load_config(path)
    with pytest.raises(ConfigError, match="duplicate key 'n'"):
        load_config(DEMO, ["rollout={n: 2, n: 3}"])


def test_a_merged_key_may_be_overridden(tmp_path):
    raw = yaml.safe_load(DEMO.read_text())
    raw.pop("rollout")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw) + "rollout:\n  <<: {n: 2, max_new_tokens: 16}\n  n: 3\n")
    assert load_config(path).rollout.n == 3


@pytest.mark.parametrize("override,message", [
    ("data.prompt_template='Solve: {problem}'", "data.prompt_template: needs the placeholder {prompt} (it has {problem})"),
    ("data.prompt_template='Q: {prompt} {x}'", "data.prompt_template: unknown placeholder {x}"),
    ("data.prompt_template='Q:'", "data.prompt_template: needs the placeholder {prompt}"),
    ("update.star.hint_template='{prompt} (hint)'", "update.star.hint_template: needs the placeholder {answer}"),
    ("update.star.hint_template='{problem} {answer}'", "update.star.hint_template: needs the placeholder {prompt}"),
    ("growth={template: 'Write a problem:'}", "growth.template: needs the placeholder {examples}"),
    ("growth={template: '{examples} {example}'}", "growth.template: unknown placeholder {example}"),
    ("growth={stop: ''}", "growth.stop: an empty stop string"),
    ("update.cai.critique_template='{prompt} Critique:'", "update.cai.critique_template: needs the placeholder"),
    ("update.cai.revision_template='{conversation} Revise:'", "update.cai.revision_template: needs the placeholder"),
    ("update.cai.judge_template='{prompt} {a} {b} {principal}'", "update.cai.judge_template: needs the placeholder {principle}"),
    ('rollout.stop=["\\n", ""]', "rollout.stop: an empty stop string"),
])
def test_templates_and_stops_that_make_every_request_alike_are_refused(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(DEMO, [override])
    assert message in str(err.value)


@pytest.mark.parametrize("template", ["{prompt}", "Solve:\n{prompt}\nAnswer as \\boxed{x}.", "{prompt} = \\frac{a}{b}?",
                                      "Return JSON like {\"answer\": 1}. {prompt}", "{prompt}{prompt}"])
def test_templates_may_hold_other_braces(template):
    assert load_config(DEMO, [f"data.prompt_template={json.dumps(template)}"]).data.prompt_template == template


def test_eval_max_new_tokens_needs_at_least_one_token_or_null():
    assert load_config(DEMO, ["eval.max_new_tokens=null"]).eval.max_new_tokens is None
    for value in (0, -1):
        with pytest.raises(ConfigError, match="eval.max_new_tokens: Input should be greater than or equal to 1"):
            load_config(DEMO, [f"eval.max_new_tokens={value}"])


def test_lr_schedulers_are_transformers_schedulers_that_need_no_extra_settings():
    from typing import get_args

    from transformers.trainer_utils import SchedulerType

    from policies.train_settings import LRScheduler

    assert set(get_args(LRScheduler)) <= {s.value for s in SchedulerType}
    with pytest.raises(ConfigError, match="update.lr_scheduler: Input should be 'constant'"):
        load_config(DEMO, ["update.lr_scheduler=cosine_wrong"])
    with pytest.raises(ConfigError, match="update.lr_scheduler"):
        load_config(DEMO, ["update.lr_scheduler=cosine_with_min_lr"])  # needs min_lr, which we cannot pass
    assert load_config(DEMO, ["update.lr_scheduler=cosine"]).update.lr_scheduler == "cosine"


@pytest.mark.parametrize("overrides,message", [
    (["model.tiny.arch=gpt2", "model.tiny.hidden_size=30"], "model.tiny: gpt2 needs hidden_size to split evenly over num_heads, got hidden_size 30 / num_heads 4"),
    (["model.tiny.hidden_size=36"], "model.tiny: qwen2 needs hidden_size to split evenly over num_heads into heads of even size"),
    (["model.tiny.max_position_embeddings=32"], "rollout.max_new_tokens: 40 new tokens do not fit"),
    (["model.tiny.max_position_embeddings=64", "eval.max_new_tokens=64"], "eval.max_new_tokens: 64 new tokens do not fit"),
])
def test_tiny_model_shapes_that_cannot_run_are_refused(overrides, message):
    with pytest.raises(ConfigError) as err:
        load_config(DEMO, overrides)
    assert message in str(err.value)


def test_rewards_that_all_weigh_zero_are_refused_unless_gates_alone_decide():
    zero = "rewards=[{name: length, weight: 0.0, gate: 1.0, args: {min_tokens: 1}}, {name: math, weight: 0.0}]"
    with pytest.raises(ConfigError, match="rewards: every weight is 0, so every sample's total is 0 and none reaches "
                                          "update.threshold"):
        load_config(DEMO, [zero])
    with pytest.raises(ConfigError, match="grpo learns nothing"):
        load_config(DEMO, [zero, "update.algorithm=grpo"])
    assert load_config(DEMO, [zero, "update.threshold=0.0"]).update.threshold == 0.0  # gate-only: keep what passes


def test_trl_loss_names_are_trl_s_and_others_are_refused():
    import dataclasses
    from typing import get_args

    from trl import DPOConfig, GRPOConfig

    from policies.updates.config import DPOLoss, GRPOLoss

    for trl_config, ours in ((DPOConfig, DPOLoss), (GRPOConfig, GRPOLoss)):
        help_text = next(f.metadata["help"] for f in dataclasses.fields(trl_config) if f.name == "loss_type")
        assert all(f"'{name}'" in help_text for name in get_args(ours)), (trl_config.__name__, help_text)
    with pytest.raises(ConfigError, match=r"update.dpo.loss_type.1: Input should be 'sigmoid'"):
        load_config(DEMO, ["update.dpo.loss_type=[sigmoid, sftt]"])
    with pytest.raises(ConfigError, match=r"update.grpo.loss_type: Input should be 'grpo'"):
        load_config(DEMO, ["update.grpo.loss_type=ppo"])


@pytest.mark.parametrize("override", ["data.subset=main", "data.eval_split=test"])
def test_hub_dataset_keys_without_a_hub_dataset_are_refused(override):
    with pytest.raises(ConfigError, match=f"data.{override.split('=')[0].split('.')[1]} picks from a hub dataset"):
        load_config(DEMO, [override])
