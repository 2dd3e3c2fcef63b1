"""The iteration controller: it owns control flow and records it; workers do the heavy work.

Round 0 makes the starting policy (a tiny model built from config, optionally SFT'd on the
labeled seed set) and evaluates it. Each later round is

    generate -> reward -> filter -> train -> swap -> evaluate [-> control]

(the swap loads the new checkpoint into the running engine in place, and evaluation then runs
on it). After each phase its metrics are written and `state.json` names it, so `loop resume`
skips every finished phase; generation resumes by shard and training from the Trainer's last
checkpoint. Everything is seeded per (round, phase, shard), so a resumed run ends with the
same metrics as an uninterrupted one.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from pathlib import Path

from datasets import Dataset, concatenate_datasets
from rich.console import Console

from policies.atomic import parquet_rows, save_parquet
from loop.config import LoopConfig
from loop.data import TaskData, load_task_data, round_prompts
from loop.distill import TEACHER_DIR, build_teacher, failed_prompts, provenance_metrics, with_teacher_rollouts
from loop.evaluate import evaluate
from loop.growth import grow, kept_problems
from loop.monitor.alarms import AlarmStop
from loop.monitor.monitor import Monitor
from loop.tasks import curriculum_pool
from loop.progress import BarCallback, phase_bar, summary_line
from loop.retention import prune_old_policies, prune_trainer_checkpoints
from loop.rollouts import generate_shards, level_pass_rate, seed_for
from loop.scorer import BackgroundScorer
from loop.scoring import score, score_shards
from loop.rundir import RunDir, RunState
from loop.threads import machine_cores
from loop.tracking import Tracker
from policies.engines import RolloutEngine, SamplingParams, build_engine
from policies.judges import EngineGenerator, attach_judges, build_rewards
from policies.loading import build_tiny
from policies.prompts import render_prompt
from policies.launch import train
from policies.schema import is_score_column
from policies.train_settings import TrainSettings
from policies.training import TrainJob, TrainResult
from policies.updates.build import BuildContext, build_algorithm
from policies.updates.replay import mix_replay
from policies.tables import ScoredRollouts, read_parquet
from rewards import build_reward

INIT_PHASES = ("init", "evaluate", "control")
ROUND_PHASES = ("generate", "reward", "filter", "train", "swap", "evaluate", "control")
TRAINING_PHASES = {"init": "train", "train": "train", "control": "control"}  # phase -> its jobs' dir


class Loop:
    def __init__(self, cfg: LoopConfig, run: RunDir, tracker: Tracker, console: Console,
                 scorer: BackgroundScorer | None = None):
        self.cfg, self.run, self.tracker, self.console = cfg, run, tracker, console
        self.scorer = scorer  # scores shards (and measures their diversity) beside the round, if it can
        self.state: RunState = run.load_state()
        self.rewards = build_rewards(cfg.rewards)
        named = {r.name: r.fn for r in self.rewards}
        self.verifier = named.get(cfg.eval.verifier) or build_reward(cfg.eval.verifier)
        self.algorithm = build_algorithm(cfg.update, cfg.rewards, cfg.rollout)
        self.engine: RolloutEngine | None = None
        self.teacher: RolloutEngine | None = None  # `teacher:` distillation, loaded on first use
        self.data: TaskData | None = None
        self._generated: int | None = None  # the round whose generate phase this process just ran
        self.monitor = Monitor(cfg.monitor, run.path, cfg.seed, lambda line: console.print(f"[yellow]{line}[/yellow]"))

    # --- driver ---------------------------------------------------------------------------
    def run_all(self) -> None:
        self.data = load_task_data(self.cfg.data, self.cfg.seed, self.run.data_dir)
        # What is alive now (torch, transformers, TRL, the task data: ~500k objects) lives as
        # long as the process. Out of the collector's sight, a full collection (every Trainer's
        # end calls one, and allocation-heavy phases trigger more) costs ~0 s instead of ~0.3 s.
        # Collected first, so that no garbage is frozen with them.
        gc.collect()
        gc.freeze()
        for r in range(self.state.round, self.cfg.rounds + 1):
            for phase in self._phases(r):
                if not self._done(r, phase):
                    self._run_phase(r, phase)
            self._finish_round(r)
            self._check_alarms(r)
        self.state.done = True
        self.run.save_state(self.state)

    def _phases(self, r: int) -> tuple[str, ...]:
        phases = INIT_PHASES if r == 0 else ROUND_PHASES
        return phases if self.cfg.control.enabled else tuple(p for p in phases if p != "control")

    def _done(self, r: int, phase: str) -> bool:
        s = self.state
        if r != s.round:
            return r < s.round
        phases = self._phases(r)
        return s.phase is not None and phases.index(phase) <= phases.index(s.phase)

    def _run_phase(self, r: int, phase: str) -> None:
        if self.engine is None and phase != "init":
            self._start_engine()
        decided = len(self.state.threads)
        threads = self.cfg.threads.apply(phase, self.state.threads)
        if len(self.state.threads) > decided:  # an "auto" choice: kept before anything depends on it
            self.run.save_state(self.state)
        start = time.perf_counter()
        metrics = getattr(self, f"_{phase}")(r) or {}
        metrics[f"time/{phase}_s"] = time.perf_counter() - start
        metrics[f"threads/{phase}"] = float(threads)
        self.run.save_phase_metrics(r, phase, metrics)
        self.state.round, self.state.phase = r, phase
        self.state.history.append(f"{r}/{phase}")
        self.run.save_state(self.state)
        if phase in TRAINING_PHASES:  # recorded: its Trainer checkpoints are never read again
            job_dir = self.run.round_dir(r) / TRAINING_PHASES[phase]
            prune_trainer_checkpoints(job_dir, self.cfg.storage.trainer_checkpoints)

    def _finish_round(self, r: int) -> None:
        record = self.run.round_record(r)
        self.run.append_round_metrics(record)
        self.tracker.log(record, step=r)
        self.console.print(summary_line(record, self.run.read_metrics()), soft_wrap=True)
        self.state.round, self.state.phase = r + 1, None
        self.run.save_state(self.state)
        if self.cfg.storage.policies is not None:
            in_use = {Path(p).resolve() for p in (self.state.generator, self.state.policies.get(str(r)),
                                                  self.state.controls.get(str(r))) if p}
            prune_old_policies([self.run.round_dir(i) for i in range(r + 1)], self.cfg.storage.policies, in_use)

    def _start_engine(self) -> None:
        self.engine = build_engine(self.cfg.rollout, self.cfg.model, self.state.generator, self.state.generator_id)
        attach_judges([r.fn for r in self.rewards] + [self.verifier], self.engine)  # Self-Rewarding: the live policy judges
        for split in ("train", "eval"):
            ds = getattr(self.data, split)
            setattr(self.data, split, ds.add_column("prompt_text", [self._render(p) for p in ds["prompt"][:]]))

    def _render(self, problem: str) -> str:
        text = self.cfg.data.prompt_template.replace("{prompt}", problem)
        return render_prompt(self.engine.tokenizer, text, self.cfg.model.chat_template)

    # --- round 0 --------------------------------------------------------------------------
    def _init(self, r: int) -> dict:
        cfg = self.cfg
        base = cfg.model.name
        if base is None:
            base = str(build_tiny(cfg.model, cfg.seed, self.run.round_dir(0) / "base"))
        self.state.generator, self.state.generator_id = base, "round_000"
        self._start_engine()
        metrics: dict = {}
        if self.data.seed is not None:
            seed_set = Dataset.from_dict({"prompt": [self._render(p) for p in self.data.seed["prompt"][:]],
                                          "completion": self.data.seed["rationale"][:]})
            save_parquet(seed_set, self._seed_examples())
        if cfg.update.seed_epochs > 0 and self.data.seed is not None:
            job = self._job(base, self._seed_examples(), self.run.round_dir(0) / "train",
                            self.run.checkpoint(0), seed=cfg.seed, epochs=cfg.update.seed_epochs,
                            learning_rate=cfg.update.seed_learning_rate or cfg.update.learning_rate)
            result = self._train_with_bar(job, "seed sft", train)
            metrics = {"train/seed_steps": float(result.steps), "train/seed_loss": result.train_loss}
            base = str(self.run.checkpoint(0))
            self.engine.load_weights(Path(base), "round_000")
        self.state.generator = base
        self.state.policies["0"] = self.state.controls["0"] = base
        return metrics | self.monitor.data_overlap(self.data.train["prompt"][:], self._eval_texts())

    def _seed_examples(self) -> Path:
        return self.run.round_dir(0) / "seed_examples.parquet"

    # --- round r phases -------------------------------------------------------------------
    def _generate(self, r: int) -> dict:
        pool, metrics = curriculum_pool(self.data.train, self.cfg.data.task, r, lambda earlier, level: level_pass_rate(
            self._scored_path(earlier), level, self.cfg.update.threshold))
        prompts = round_prompts(pool, r, self.cfg.data.prompts_per_round, self.cfg.seed)
        metrics["generator/round"] = float(r - 1)
        if self.cfg.growth is not None:  # new problems written this round join its prompts
            grown, growth_metrics = self._grow(r)
            prompts, metrics = concatenate_datasets([prompts, grown.cast(prompts.features)]), metrics | growth_metrics
        metrics["rollout/prompts"] = float(len(prompts))
        teacher = self.cfg.teacher
        on_shard = self.scorer.submit if self._scores_beside_generation() else (lambda path: None)
        student = None if teacher and teacher.mode == "all" else self._sample(r, prompts, "rollouts", on_shard=on_shard)
        if teacher is None:
            self._generated = r
            return metrics | {"rollout/samples": float(sum(parquet_rows(shard) for shard in student))}
        rollouts, student_prompts = self._distill(r, prompts, student)
        self._generated = r
        return metrics | provenance_metrics(rollouts, student_prompts) | {"rollout/samples": float(len(rollouts))}

    def _grow(self, r: int) -> tuple[Dataset, dict]:
        g, ro = self.cfg.growth, self.cfg.rollout
        author = EngineGenerator(self._teacher_engine if g.author == "teacher" else (lambda: self.engine),
                                 self.cfg.model.chat_template)
        pool = self.data.train["prompt"][:] + kept_problems(self.run.round_dir(i) for i in range(1, r))
        solve = SamplingParams(g.solutions, ro.temperature, ro.top_p, ro.max_new_tokens, tuple(ro.stop))
        return grow(g, author, self.engine, self._render, pool, self.data.eval["prompt"][:], r, self.cfg.seed,
                    self.run.round_dir(r), solve)

    def _teacher_engine(self) -> RolloutEngine:
        if self.teacher is None:
            self.teacher = build_teacher(self.cfg.teacher, self.cfg.rollout)
        return self.teacher

    def _distill(self, r: int, prompts: Dataset, student: list[Path] | None) -> tuple[Dataset, int]:
        """The teacher writes every rollout (`mode: all`) or those of the prompts the student
        failed (`mixed`); returns the round's rollouts and how many prompts the student kept."""
        if self.cfg.teacher.mode == "all":
            return read_parquet(self._sample(r, prompts, "rollouts", self._teacher_engine())), 0
        failed = set(failed_prompts(score(read_parquet(student), self.rewards)[0], self.cfg.update.threshold))
        if failed:
            self._sample(r, prompts.filter(lambda row: row["prompt_id"] in failed), TEACHER_DIR, self._teacher_engine())
        return self._load_rollouts(r), len(prompts) - len(failed)

    def _sample(self, r: int, prompts: Dataset, name: str, engine: RolloutEngine | None = None,
                on_shard: Callable[[Path], None] = lambda path: None) -> list[Path]:
        """The round's samples of `prompts` as shard files under `round_dir/name` (finished ones kept)."""
        ro = self.cfg.rollout
        params = SamplingParams(ro.n, ro.temperature, ro.top_p, ro.max_new_tokens, tuple(ro.stop))
        with phase_bar(self.console, name[:10], total=len(prompts)) as bar:
            return generate_shards(engine or self.engine, prompts, params, self.run.round_dir(r) / name,
                                   ro.prompts_per_shard, self.cfg.seed, r, bar.advance, on_shard)

    def _reward(self, r: int) -> dict:
        # The shards are a cache of a seeded computation: a deleted or truncated one is made
        # again by the generate phase's own path (grown prompts are read back from growth.parquet,
        # the teacher answers the same failed prompts), and finished shards are only read. Not
        # straight after this process generated them: picking the prompts again costs ~0.05 s.
        if self._generated != r:
            self._generate(r)
        shards = sorted((self.run.round_dir(r) / "rollouts").glob("shard_*.parquet"))
        if (self.run.round_dir(r) / TEACHER_DIR).is_dir():  # mixed distillation: one table of both writers
            shards = [self.run.round_dir(r) / "rollouts_with_teacher.parquet"]
            save_parquet(self._load_rollouts(r), shards[0])
        rows = self.cfg.tracking.table_rows
        if self.scorer is not None:  # diversity for the filter phase, after the shards it holds
            self.scorer.measure_rollouts(r, shards, self.cfg.threads.count("filter", self.state.threads))
        if self._scores_beside_generation():  # most were scored while the round was generated
            preview, metrics = self.scorer.finish(shards, self._scored_path(r), self.rewards, preview_rows=rows)
        else:
            preview, metrics = score_shards(shards, self._scored_path(r), self.rewards, preview_rows=rows)
        self.tracker.log_rollouts(_table_rows(preview), step=r)
        return metrics

    def _scores_beside_generation(self) -> bool:
        """Whether the worker scores shards as they are generated: when an accelerator or a server
        generates, or torch's threads leave cores free (OMP_NUM_THREADS caps torch, not the
        worker). Beside torch on every core that, and sharing the reward phase, measured slower
        than scoring in process (bench/README.md)."""
        import torch

        on_the_cpus = self.cfg.rollout.engine == "hf" and not torch.cuda.is_available()
        spare = not on_the_cpus or self.cfg.threads.count("generate", self.state.threads) < machine_cores()
        return self.scorer is not None and spare

    def _load_rollouts(self, r: int) -> Dataset:
        files = sorted(str(p) for p in (self.run.round_dir(r) / "rollouts").glob("shard_*.parquet"))
        return with_teacher_rollouts(read_parquet(files), self.run.round_dir(r))

    def _scored_path(self, r: int) -> Path:
        return self.run.round_dir(r) / "scored.parquet"

    def _filter(self, r: int) -> dict:
        scored = ScoredRollouts.open(self._scored_path(r))
        ctx = BuildContext(round=r, sample=lambda prompts, name: self._sample_scored(r, prompts, name),
                           render=self._render, out_dir=self.run.round_dir(r),
                           policy=EngineGenerator(lambda: self.engine, self.cfg.model.chat_template))
        examples, metrics = self.algorithm.build_examples(scored, ctx)
        examples, hygiene = self.monitor.hygiene(r, examples, self._eval_texts())
        metrics |= hygiene
        shards = self._shard_paths(r)  # their diversity measured by the background worker meanwhile, if it could
        measured = self.scorer.rollout_set(shards) if self.scorer is not None else None
        metrics |= self.monitor.rollouts(r, shards, examples, scored.value_counts("rejected_by"), self._gates(),
                                         metrics, measured)
        if self.cfg.update.replay_fraction > 0:
            seed_set = read_parquet(str(self._seed_examples()))
            examples, replayed = mix_replay(examples, seed_set, self.cfg.update.replay_fraction,
                                            seed_for(self.cfg.seed, r, "replay"))
            metrics["train/replay_examples"] = float(replayed)
        save_parquet(examples, self._examples_path(r))
        metrics["train/examples"] = float(len(examples))
        return metrics

    def _sample_scored(self, r: int, prompts: Dataset, name: str) -> ScoredRollouts:
        """More samples an algorithm asks for (STaR's rationalization), scored beside their shards."""
        scored = self.run.round_dir(r) / name / "scored.parquet"
        score_shards(self._sample(r, prompts, name), scored, self.rewards)
        return ScoredRollouts.open(scored)

    def _shard_paths(self, r: int) -> list[Path]:
        return sorted((self.run.round_dir(r) / "rollouts").glob("shard_*.parquet"))

    def _gates(self) -> list[str]:
        return [w.name for w in sorted(self.rewards, key=lambda w: w.cost) if w.gate is not None]

    def _eval_texts(self) -> list[str]:
        return self.data.eval["prompt"][:] + self.data.eval["reference_answer"][:]

    def _examples_path(self, r: int) -> Path:
        return self.run.round_dir(r) / "train" / "examples.parquet"

    def _train(self, r: int) -> dict:
        init = self._init_policy(self.state.policies, r)
        examples = self._examples_path(r)
        if parquet_rows(examples) == 0:  # Dataset.from_parquet refuses an empty file
            self.console.print(f"  round {r}: no accepted samples; the policy stays as it was")
            self.state.policies[str(r)] = init
            return {"train/steps": 0.0}
        job = self._job(init, examples, self.run.round_dir(r) / "train", self.run.checkpoint(r),
                        seed=seed_for(self.cfg.seed, r, "train") % 2**31)
        result = self._train_with_bar(job, "train", self.algorithm.train)
        self.state.policies[str(r)] = str(self.run.checkpoint(r))
        return {"train/steps": float(result.steps), "train/loss": result.train_loss,
                **{f"train/{k}": v for k, v in result.metrics.items()}}

    def _init_policy(self, policies: dict[str, str], r: int) -> str:
        return policies["0"] if self.cfg.update.start_from == "base" else policies[str(r - 1)]

    def _swap(self, r: int) -> dict:
        policy = self.state.policies[str(r)]
        start = time.perf_counter()
        self.engine.load_weights(Path(policy), f"round_{r:03d}")
        self.state.generator, self.state.generator_id = policy, f"round_{r:03d}"
        return {"swap/seconds": time.perf_counter() - start}

    def _evaluate(self, r: int) -> dict:
        ev = self.cfg.eval
        max_new = ev.max_new_tokens or self.cfg.rollout.max_new_tokens
        with phase_bar(self.console, "evaluate"):
            return evaluate(self.engine, self.data.eval, self.verifier, ev.k, ev.temperature, max_new,
                            tuple(self.cfg.rollout.stop), seed_for(self.cfg.seed, r, "eval"),
                            observe=lambda *samples: self.monitor.eval_samples(r, *samples))

    def _control(self, r: int) -> dict:
        """The baseline: the loop's optimizer steps of this round spent on the seed set alone."""
        if r == 0:
            return {"control/pass@1": self.run.round_metrics(0)["eval/pass@1"]}
        steps = int(self.run.round_metrics(r).get("train/steps", 0))
        init = self._init_policy(self.state.controls, r)
        policy = init
        if steps > 0:
            out = self.run.round_dir(r) / "control"
            job = self._job(init, self._seed_examples(), out / "train", out / "checkpoint",
                            seed=seed_for(self.cfg.seed, r, "control") % 2**31, max_steps=steps)
            self._train_with_bar(job, "control", train)
            policy = str(out / "checkpoint")
        self.state.controls[str(r)] = policy
        self.engine.load_weights(Path(policy), "control")
        try:
            return self._evaluate_greedy("control")
        finally:
            self.engine.load_weights(Path(self.state.generator), self.state.generator_id)

    def _evaluate_greedy(self, prefix: str) -> dict:
        max_new = self.cfg.eval.max_new_tokens or self.cfg.rollout.max_new_tokens
        return evaluate(self.engine, self.data.eval, self.verifier, 1, 0.0, max_new,
                        tuple(self.cfg.rollout.stop), 0, prefix=prefix)

    # --- alarms -----------------------------------------------------------------------------
    def _check_alarms(self, r: int) -> None:
        """After a finished round: warn (console, alarms.jsonl, W&B) or stop the run."""
        fired = self.monitor.alarms(self.run.read_metrics())
        for alarm in fired:
            self.console.print(f"[yellow]{alarm.message}[/yellow]", soft_wrap=True)
            self.tracker.alert(f"selfloop {self.cfg.name}: {alarm.rule}", alarm.message)
        stops = [a.rule for a in fired if a.action == "stop"]
        if stops and r < self.cfg.rounds:
            raise AlarmStop(f"stopped after round {r} by alarm {', '.join(stops)}; change the config and "
                            f"`loop resume {self.run.path} --set ... --force` to continue")

    # --- helpers --------------------------------------------------------------------------
    def _job(self, model: str, dataset: Path, output_dir: Path, final_dir: Path, seed: int,
             **overrides) -> TrainJob:
        """A training job with the run's `TrainSettings`, some overridden (seed SFT, control)."""
        u = self.cfg.update
        return TrainJob(
            model_path=model, dataset_path=str(dataset), output_dir=str(output_dir), final_dir=str(final_dir),
            settings=TrainSettings.of(u).model_copy(update=overrides), seed=seed, dtype=self.cfg.model.dtype,
            lora=u.lora.peft_kwargs() if u.lora else None, adapter_dir=str(Path(final_dir).parent / "adapter"),
            tokenizer_path=self.cfg.model.tokenizer,
            deepspeed=u.deepspeed.config() if u.deepspeed else None, nodes=u.nodes.model_dump() if u.nodes else None,
        )

    def _train_with_bar(self, job: TrainJob, label: str, trainer) -> TrainResult:
        """`trainer` is the algorithm's `train` for a round, plain SFT for the seed set and control.

        Engines that share the accelerator with training (in-process vLLM) free their memory
        first; the swap that follows every training (or their next generate) reloads them."""
        for engine in (self.engine, self.teacher):
            if engine is not None:
                engine.release_memory()
        with phase_bar(self.console, label) as bar:
            return trainer(job, self.cfg.update.num_processes, (BarCallback(bar),))


def _table_rows(scored_rows: list[dict]) -> list[dict]:
    keep = ["prompt_id", "prompt", "completion", "reference_answer"]
    return [{c: row[c] for c in row if c in keep or (is_score_column(c) and c != "rejected_by")} for row in scored_rows]
