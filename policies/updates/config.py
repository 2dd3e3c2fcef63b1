"""The `update` section: which algorithm turns scored rollouts into a new policy, and how.

SFT-style algorithms (rft, star, rest, rest_em) filter samples and fine-tune on them; `dpo`
trains on preference pairs; `grpo` runs online RL. `lora` and `num_processes` apply to all.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from policies.deepspeed import DeepSpeedSettings
from policies.train_settings import TrainSettings
from rewards.section import Section, check_template, read_yaml_file

SFT_STYLE = ("rft", "star", "rest", "rest_em")

# TRL's loss names (its configs take any string and fail only once training starts);
# tests/test_config.py checks each against TRL's own list. DPO's exo_pair is left out: it needs
# a label_smoothing we do not pass.
DPOLoss = Literal["sigmoid", "hinge", "ipo", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot", "aot_unpaired",
                  "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm"]
GRPOLoss = Literal["grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo"]


class StarConfig(Section):
    rationalize: bool = True
    hint_template: str = Field("{prompt} (answer {answer}) ", description="Prompt with the answer as a hint.")

    @field_validator("hint_template")
    @classmethod
    def _shows_problem_and_answer(cls, template: str) -> str:
        return check_template(template, required=("prompt", "answer"))


class DifficultyBand(Section):
    """Keep only prompts whose pass rate among their samples lies in [lo, hi]."""

    lo: float = Field(0.0, ge=0.0, le=1.0)
    hi: float = Field(1.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> "DifficultyBand":
        if self.lo > self.hi:
            raise ValueError(f"lo ({self.lo}) must not exceed hi ({self.hi})")
        return self


class RestConfig(Section):
    """ReST's Improve steps: each fine-tunes (from the previous step) on the round's samples
    whose reward reaches its threshold."""

    thresholds: list[float] = Field([], description="Rising reward thresholds, one Improve step each, e.g. [1.0, 1.5, 2.0].")

    @model_validator(mode="after")
    def _rising(self) -> "RestConfig":
        if any(b <= a for a, b in zip(self.thresholds, self.thresholds[1:])):
            raise ValueError(f"thresholds {self.thresholds} must rise strictly, e.g. [1.0, 1.5, 2.0]")
        return self


class DPOConfig(Section):
    beta: float = Field(0.1, gt=0)
    loss_type: list[DPOLoss] = Field(["sigmoid", "sft"], min_length=1, description="TRL loss types; `sft` adds RPO's NLL on the chosen answer.")
    loss_weights: list[float] | None = Field([1.0, 1.0], description="One weight per loss type; null = all 1.")
    max_pairs_per_prompt: int = Field(1, ge=1)
    min_margin: float = Field(0.0, ge=0, description="Chosen must beat rejected by more than this (ties never pair).")
    score: str | None = Field(None, description="Rank by this reward (e.g. a pairwise `judge`: Self-Rewarding); null = the total.")

    @model_validator(mode="after")
    def _weights_match(self) -> "DPOConfig":
        if self.loss_weights is not None and len(self.loss_weights) != len(self.loss_type):
            raise ValueError(f"loss_weights has {len(self.loss_weights)} entries for {len(self.loss_type)} loss types")
        return self


class GRPOConfig(Section):
    steps: int | None = Field(None, ge=1, description="GRPO steps per round; null = one pass over the round's prompts.")
    prompts_per_step: int = Field(8, ge=1, description="Prompts per optimizer step; each gets rollout.n completions.")
    drop_all_equal: bool = Field(True, description="Drop prompts whose samples all score the same (DAPO dynamic sampling).")
    beta: float = Field(0.0, ge=0, description="KL coefficient; 0 needs no reference model.")
    loss_type: GRPOLoss = "dapo"
    scale_rewards: Literal["group", "batch", "none"] = "group"
    num_iterations: int = Field(1, ge=1)
    epsilon: float = Field(0.2, gt=0)
    epsilon_high: float | None = None
    use_vllm: bool = Field(False, description="Generate with vLLM inside the trainer (GPU only).")
    vllm_mode: Literal["colocate", "server"] = "colocate"
    vllm_gpu_memory_utilization: float = Field(0.3, gt=0, le=1)


class GKDSettings(Section):
    """On-policy distillation (Agarwal et al. 2024) with TRL's `GKDTrainer`; the teacher must
    share the student's tokenizer (logits are compared token by token)."""

    teacher: str | None = Field(None, description="Hub id or local path of the teacher model (required for gkd).")
    lmbda: float = Field(0.5, ge=0, le=1, description="Share of batches the student samples on-policy.")
    beta: float = Field(0.5, ge=0, le=1, description="Generalized JSD interpolation: 0 = forward KL, 1 = reverse KL.")
    temperature: float = Field(0.9, gt=0, description="Sampling temperature of on-policy generations.")
    max_new_tokens: int = Field(64, ge=1)
    seq_kd: bool = Field(False, description="Also train on teacher-generated sequences (sequence-level KD).")


class Principle(Section):
    """One principle of a constitution: how to ask for a critique, then for a revision."""

    name: str = ""
    critique: str = Field(description="The critique request, e.g. 'Identify any step that is wrong.'")
    revision: str = Field(description="The revision request, e.g. 'Rewrite the answer with every step right.'")
    preference: str = Field("", description="What an AI judge prefers under it (`cai.pairs: judge`), e.g. "
                            "'Which response has every step right?'; default: the critique request.")


# After Bai et al. 2022 (Appendix C), reworded for tasks with worked answers.
DEFAULT_PRINCIPLES = [
    Principle(name="correct", critique="Identify every step or claim in the response that is wrong.",
              revision="Rewrite the response so that every step and claim is right."),
    Principle(name="honest", critique="Point out anything in the response that is stated with more confidence "
              "than it deserves, or made up.", revision="Rewrite the response to be honest about what it knows."),
    Principle(name="harmless", critique="Identify ways in which the response is harmful, unethical or rude.",
              revision="Rewrite the response to remove anything harmful, unethical or rude."),
]


# Each CAI template's placeholders: (required, optional). The critique request may also show
# the problem ({prompt}); the revision request has it inside {conversation}.
_TEMPLATE_SLOTS = {"judge_template": (("principle", "prompt", "a", "b"), ()),
                   "critique_template": (("completion", "critique_request"), ("prompt",)),
                   "revision_template": (("conversation", "critique", "revision_request"), ())}


DEFAULT_JUDGE_TEMPLATE = """Consider a request and two responses to it.

[Request]
{prompt}

[Response A]
{a}

[Response B]
{b}

Principle: {principle}
Which response follows the principle better? End with a line "Winner: A" or "Winner: B"."""


class CAISettings(Section):
    """Constitutional AI (Bai et al. 2022): critique under a sampled principle, then revise."""

    principles: list[Principle] = Field(DEFAULT_PRINCIPLES, min_length=1)
    principles_file: str | None = Field(None, description="YAML/JSON list of principles; replaces `principles`.")
    output: Literal["sft", "dpo"] = Field("sft", description="sft: SL-CAI (train on revisions); "
                                                             "dpo: RLAIF preference pairs (see `pairs`).")
    pairs: Literal["revision", "judge"] = Field(
        "revision", description="Where dpo pairs come from: revision preferred over the original, or an AI judge's "
        "preference between two samples of a prompt under a sampled principle (both orders asked).")
    judge: dict = Field({"backend": "policy"}, description="`judge` reward args for `pairs: judge` (backend policy | hf "
                        "| openai, model, url, pattern, max_new_tokens, temperature, ...); mode is pairwise.")
    judge_template: str = Field(DEFAULT_JUDGE_TEMPLATE, description="The judge's request: {principle}, {prompt}, {a}, {b}.")
    critic: str | None = Field(None, description="Hub id or path of the critic/reviser; null = the policy itself.")
    samples_per_prompt: int = Field(1, ge=1, description="Revise the first K samples of each prompt.")
    max_new_tokens: int = Field(128, ge=1)
    temperature: float = Field(0.7, ge=0)
    critique_template: str = "{prompt}\n{completion}\n\nCritique request: {critique_request}\nCritique:"
    revision_template: str = "{conversation} {critique}\n\nRevision request: {revision_request}\nRevision:"
    max_length_ratio: float = Field(4.0, gt=0, description="Drop revisions longer than this times the original (+ 20 chars).")
    repetition: dict = Field({"n": 4, "max_share": 0.3}, description="Drop revisions the `repetition` filter rejects.")

    @field_validator("judge_template", "critique_template", "revision_template")
    @classmethod
    def _slots(cls, template: str, info: ValidationInfo) -> str:
        required, optional = _TEMPLATE_SLOTS[info.field_name]
        return check_template(template, required, optional)

    @model_validator(mode="after")
    def _principles_load(self) -> "CAISettings":
        if self.principles_file is not None:
            self.load_principles()  # a missing or malformed file fails at config time
        if self.pairs == "judge":
            if self.output != "dpo":
                raise ValueError("cai.pairs: judge makes preference pairs: set cai.output: dpo")
            self.build_judge("")  # bad judge args fail at config time; nothing is loaded
        return self

    def build_judge(self, principle: str):
        """The `judge` reward (pairwise) asking `judge_template` under one principle."""
        from rewards.judge import JudgeReward

        args = {k: v for k, v in self.judge.items() if k not in ("mode", "rubric")}
        rubric = self.judge_template.replace("{principle}", principle)
        try:
            return JudgeReward(**args, mode="pairwise", rubric=rubric)
        except TypeError as err:  # an unknown argument name
            raise ValueError(f"cai.judge: {err}") from None

    def load_principles(self) -> list[Principle]:
        if self.principles_file is None:
            return self.principles
        raw = read_yaml_file(self.principles_file, "principles_file")
        shape = "expected a non-empty list of {critique: ..., revision: ...}"
        if not isinstance(raw, list) or not raw:
            raise ValueError(f"principles_file {self.principles_file}: {shape}")
        principles = []
        for i, entry in enumerate(raw):
            try:
                principles.append(Principle.model_validate(entry, strict=True))
            except ValidationError as err:
                first = err.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                raise ValueError(f"principles_file {self.principles_file}: entry {i + 1}"
                                 f"{' ' + where if where else ''}: {first['msg']} ({shape})") from None
        return principles


class LoraSettings(Section):
    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] | str = Field("all-linear", description="Module names, or `all-linear`.")

    def peft_kwargs(self) -> dict:
        return {"r": self.r, "lora_alpha": self.alpha, "lora_dropout": self.dropout,
                "target_modules": self.target_modules}


class NodeSettings(Section):
    """A multi-node update. The `loop run` machine is rank 0 (it runs the controller and its side
    of every training job); each other machine runs `loop worker RUN --rank R` (loop/worker.py)."""

    count: int = Field(2, ge=2, description="Machines in the update's process group.")
    main_address: str = Field(..., min_length=1, description="IP or hostname of the rank-0 (`loop run`) machine.")
    main_port: int = Field(29500, ge=1, le=65535)


class UpdateConfig(TrainSettings):
    """The `update` section: the algorithm and its filter, plus the `TrainSettings` fields
    (learning_rate, epochs, batch_size, ...) every training job of the run uses."""

    algorithm: Literal["rft", "star", "rest", "rest_em", "dpo", "grpo", "gkd", "cai"] = "rft"
    init: Literal["previous", "base"] | None = Field(None, description="base: restart each round from round 0; default: base for rest_em, else previous.")
    threshold: float = Field(1.0, description="Keep samples whose total reward is >= threshold.")
    max_per_prompt: int = Field(4, ge=1, description="K: at most this many kept samples per prompt.")
    dedup: bool = True
    difficulty: DifficultyBand | None = Field(None, description="Pass-rate band of prompts to train on, e.g. {lo: 0.2, hi: 0.8}.")
    replay_fraction: float = Field(0.0, ge=0, lt=1, description="Share of each SFT round's examples drawn from the seed set.")
    num_processes: int = Field(1, ge=1, description="Processes per machine; >1 launches the update with accelerate.")
    deepspeed: DeepSpeedSettings | None = Field(None, description="ZeRO-2/3 through accelerate, e.g. {stage: 3, offload_optimizer: cpu}.")
    nodes: NodeSettings | None = Field(None, description="Multi-node updates: {count, main_address, main_port}; checkpoints on shared storage.")
    seed_epochs: float = Field(0.0, ge=0, description="Initial SFT on data.seed_path that makes round 0.")
    seed_learning_rate: float | None = Field(None, gt=0, description="Learning rate of that SFT; defaults to learning_rate.")
    lora: LoraSettings | None = Field(None, description="Train a LoRA adapter (peft) instead of all weights.")
    star: StarConfig = StarConfig()
    rest: RestConfig = RestConfig()
    dpo: DPOConfig = DPOConfig()
    grpo: GRPOConfig = GRPOConfig()
    gkd: GKDSettings = GKDSettings()
    cai: CAISettings = CAISettings()

    @model_validator(mode="after")
    def _algorithm_fits(self) -> "UpdateConfig":
        if self.algorithm == "rest_em" and self.init == "previous":
            raise ValueError("rest_em retrains from the base model every round: drop `init` "
                             "(or use algorithm: rft for init: previous)")
        if self.algorithm == "gkd" and self.gkd.teacher is None:
            raise ValueError("gkd distills from a teacher: set update.gkd.teacher to a model path or hub id "
                             "that shares the student's tokenizer")
        if self.algorithm == "rest" and not self.rest.thresholds:
            raise ValueError("rest needs update.rest.thresholds, e.g. [1.0, 1.5, 2.0]")
        if self.replay_fraction > 0 and self.algorithm not in SFT_STYLE:
            raise ValueError(f"replay_fraction mixes seed examples into SFT rounds; {self.algorithm} "
                             f"is not one ({', '.join(SFT_STYLE)})")
        return self

    @property
    def start_from(self) -> Literal["previous", "base"]:
        return self.init or ("base" if self.algorithm == "rest_em" else "previous")
