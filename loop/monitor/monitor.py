"""The controller's entry points to monitoring, one per phase; the metrics themselves are pure
functions in the sibling modules.

    filter phase:   hygiene(r, examples, eval_texts)      -> (examples, metrics)
                    rollouts(r, shards, examples, ...)     -> diversity of rollouts and kept, funnel
    evaluate phase: eval_samples(r, prompt_ids, ...)       -> eval diversity, calibration
    round 0:        data_overlap(train_prompts, eval_texts)
    after a round:  alarms(history)                        -> the alarms that fired (recorded)

Cost stays bounded however large the round: rollout shards are streamed column by column,
and the text metrics read a seeded fixed-size subsample of prompts (bottom-m by hash of the
prompt id, kept in one pass), with their samples.
"""

from __future__ import annotations

import hashlib
import heapq
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Callable, Iterable, Sequence

import pyarrow.parquet as pq
from datasets import Dataset

from policies.atomic import write_json
from loop.monitor import calibration as cal
from loop.monitor import diversity as div
from loop.monitor.alarms import Alarm, check_alarms, record_alarms
from loop.monitor.config import MonitorConfig
from loop.monitor.embed import Embedder
from loop.monitor.funnel import funnel_counts
from loop.monitor.hygiene import (EvalNgrams, MinHasher, NearDupIndex, load_signatures, overlap_share,
                                  save_signatures)
from rewards import extract_answer


class Monitor:
    def __init__(self, cfg: MonitorConfig, run_path: Path, seed: int, warn: Callable[[str], None]):
        self.cfg, self.run_path, self.seed = cfg, Path(run_path), seed
        self.embedder = Embedder(cfg.embedding_model, warn)
        self._eval_ngrams: EvalNgrams | None = None
        self._index: NearDupIndex | None = None
        self._index_next_round: int | None = None  # the round whose filter `_index` is ready for
        self._minhasher = MinHasher(cfg.near_dup.num_perm, cfg.near_dup.shingle_words)

    @property
    def alarms_file(self) -> Path:
        return self.run_path / "alarms.jsonl"

    def monitor_dir(self, r: int) -> Path:
        return self.run_path / f"round_{r:03d}" / "monitor"

    # --- round 0 ----------------------------------------------------------------------------
    def data_overlap(self, train_prompts: Iterable[str], eval_texts: Sequence[str]) -> dict[str, float]:
        if not self.cfg.contamination.enabled:
            return {}
        return {"data/train_eval_overlap": overlap_share(list(train_prompts), self._ngrams(eval_texts))}

    # --- filter phase -----------------------------------------------------------------------
    def hygiene(self, r: int, examples: Dataset, eval_texts: Sequence[str]) -> tuple[Dataset, dict[str, float]]:
        """Drop near-copies (of this round and earlier rounds' kept completions) and examples that
        overlap the eval split; save this round's kept signatures for the next rounds."""
        start, keep, metrics = time.perf_counter(), list(range(len(examples))), {}
        near = self.cfg.near_dup
        if near.enabled and "completion" in examples.column_names:
            index = self._near_dup_index(r)
            signatures = self._minhasher(examples["completion"][:])
            mask, of_earlier, of_round = index.admit(signatures)
            keep = [i for i in keep if mask[i]]
            metrics |= {"filter/near_dup/dropped_earlier": float(of_earlier),
                        "filter/near_dup/dropped_round": float(of_round)}
        if self.cfg.contamination.enabled:
            ngrams = self._ngrams(eval_texts)
            columns = [c for c in ("prompt", "completion", "chosen", "rejected") if c in examples.column_names]
            texts = {c: examples[c][:] for c in columns}
            clean = [i for i in keep if not any(ngrams.overlaps(_text(texts[c][i])) for c in columns)]
            metrics["filter/contamination/dropped"] = float(len(keep) - len(clean))
            keep = clean
        if near.enabled and "completion" in examples.column_names:
            save_signatures(self.monitor_dir(r) / "near_dup_signatures.npy", signatures[keep])
            index.keep_only(keep)
            self._index_next_round = r + 1  # it now holds rounds 1..r, as the files do
        if len(keep) < len(examples):
            examples = examples.select(keep)
        metrics["monitor/hygiene_seconds"] = time.perf_counter() - start
        return examples, metrics

    def _near_dup_index(self, r: int) -> NearDupIndex:
        """The kept signatures of rounds 1..r-1: kept from the last round in this process
        (rebuilding it each round cost seconds that grew with the run), else from their files."""
        if self._index is None or self._index_next_round != r:
            near = self.cfg.near_dup
            self._index = NearDupIndex(near.threshold, near.num_perm)
            earlier = load_signatures(self._signature_files(before=r))
            if earlier is not None:
                self._index.add(earlier)
        self._index_next_round = None  # until this round's filter finishes
        return self._index

    def _signature_files(self, before: int) -> list[Path]:
        return [self.monitor_dir(r) / "near_dup_signatures.npy" for r in range(1, before)
                if (self.monitor_dir(r) / "near_dup_signatures.npy").exists()]

    def _ngrams(self, eval_texts: Sequence[str]) -> EvalNgrams:
        if self._eval_ngrams is None:  # the eval split is fixed for the run
            self._eval_ngrams = EvalNgrams(eval_texts, self.cfg.contamination.n)
        return self._eval_ngrams

    def rollouts(self, r: int, shards: Sequence[Path], examples: Dataset, rejected: Counter,
                 gates: Sequence[str], filter_metrics: dict, rollout_set: dict | None = None) -> dict[str, float]:
        """Diversity of the round's rollouts (`rollout_set`, when a worker already measured it)
        and of the kept set; the funnel."""
        start = time.perf_counter()
        metrics = funnel_counts(rejected, gates, filter_metrics)
        if self.cfg.enabled:
            if rollout_set is None:
                rollout_set = self.rollout_set(r, shards)
            metrics |= rollout_set
            if {"completion", "prompt_id"} <= set(examples.column_names) and len(examples):  # SFT-style examples
                kept = _grouped(examples["prompt_id"][:], examples["completion"][:])
                metrics |= self._set_metrics("kept", self._pick(kept.items()), r)
        metrics["monitor/rollouts_seconds"] = time.perf_counter() - start
        return metrics

    def rollout_set(self, r: int, shards: Sequence[Path]) -> dict[str, float]:
        """Diversity of the round's rollouts, streamed from their shards: it reads nothing else,
        so the background worker (`loop/scorer.py`) can measure it while the filter runs."""
        groups, logprob_sum, tokens = self._stream_rollouts(shards)
        metrics = self._set_metrics("rollouts", groups, r)
        metrics["diversity/rollouts/nll_per_token"] = -logprob_sum / tokens if tokens else div.NAN
        return metrics

    def _stream_rollouts(self, shards: Sequence[Path]) -> tuple[list[list[str]], float, int]:
        """One pass over the shards: the subsample's texts, and the token-weighted log-prob sums."""
        def grouped_shards():
            nonlocal logprob_sum, tokens
            for path in shards:
                cols = pq.read_table(path, columns=["prompt_id", "completion", "sum_logprob", "token_count"]).to_pydict()
                logprob_sum += sum(cols["sum_logprob"])
                tokens += sum(cols["token_count"])
                yield from _grouped(cols["prompt_id"], cols["completion"]).items()

        logprob_sum, tokens = 0.0, 0
        groups = self._pick(grouped_shards())
        return groups, logprob_sum, tokens

    def _pick(self, grouped: Iterable[tuple[str, list]]) -> list[list]:
        """The `sample_prompts` groups with the smallest seeded hash of their prompt id."""
        heap: list[tuple[int, str, list]] = []
        for pid, items in grouped:
            key = -_stable_hash(self.seed, pid)
            if len(heap) < self.cfg.sample_prompts:
                heapq.heappush(heap, (key, pid, items))
            elif key > heap[0][0]:
                heapq.heapreplace(heap, (key, pid, items))
        return [items for _, _, items in sorted(heap, reverse=True)]

    def _set_metrics(self, name: str, groups: list[list[str]], r: int,
                     answers: list[list[str | None]] | None = None) -> dict[str, float]:
        texts = [t for g in groups for t in g]
        answers = answers if answers is not None else [[extract_answer(t) for t in g] for g in groups]
        out = {f"distinct_{n}": div.distinct_n(texts, n) for n in (1, 2, 3)}
        out["self_bleu"] = div.self_bleu(texts, self.cfg.self_bleu_texts, _stable_hash(self.seed, r, name))
        out["identical_share"] = div.identical_share(groups)
        out |= div.answer_stats(answers)
        embedded = groups[: self.cfg.embed_prompts]
        vectors = self.embedder.encode([t for g in embedded for t in g])
        if vectors is not None:
            offsets, rows = 0, []
            for g in embedded:
                rows.append(list(range(offsets, offsets + len(g))))
                offsets += len(g)
            out |= div.embedding_diversity(vectors, rows)
        return {f"diversity/{name}/{k}": v for k, v in out.items()}

    # --- evaluate phase ---------------------------------------------------------------------
    def eval_samples(self, r: int, prompt_ids: Sequence[str], completions: Sequence[Sequence],
                     correct: Sequence[Sequence[bool]], answers: Sequence[Sequence[str | None]]) -> dict[str, float]:
        """Diversity and calibration of the held-out k samples per prompt (`completions` are the
        engine's `Completion`s, with `sum_logprob` and `token_count`)."""
        start = time.perf_counter()
        metrics: dict[str, float] = {}
        if self.cfg.enabled:
            by_prompt = {pid: (row, ans) for pid, row, ans in zip(prompt_ids, completions, answers)}
            picked = [items[0] for items in self._pick((pid, [pid]) for pid in prompt_ids)]
            groups = [[c.text for c in by_prompt[pid][0]] for pid in picked]
            metrics |= self._set_metrics("eval", groups, r, [list(by_prompt[pid][1]) for pid in picked])
            flat = [c for row in completions for c in row]
            metrics["diversity/eval/nll_per_token"] = div.nll_per_token([c.sum_logprob for c in flat],
                                                                        [c.token_count for c in flat])
            metrics |= self._calibration(r, completions, correct, answers)
        metrics["monitor/eval_seconds"] = time.perf_counter() - start
        return metrics

    def _calibration(self, r: int, completions, correct, answers) -> dict[str, float]:
        ok = [bool(x) for row in correct for x in row]
        confidences = {
            "sequence": [cal.sequence_confidence(c.sum_logprob, c.token_count) for row in completions for c in row],
            "consistency": [x for row in cal.consistency_confidence(answers) for x in row],
        }
        metrics, bins = {}, {}
        for name, conf in confidences.items():
            metrics |= {f"calibration/{name}/{k}": v for k, v in cal.calibration_metrics(conf, ok, self.cfg.ece_bins).items()}
            bins[name] = cal.reliability_bins(conf, ok, self.cfg.ece_bins)
        write_json(self.monitor_dir(r) / "calibration.json", {"round": r, "bins": bins})
        from loop.report_plots import plot_reliability

        plot_reliability(bins, self.monitor_dir(r) / "reliability.png", f"round {r}")
        return metrics

    # --- after a round ----------------------------------------------------------------------
    def alarms(self, history: Sequence[dict]) -> list[Alarm]:
        """The rules that fire on the latest round, recorded in alarms.jsonl."""
        fired = check_alarms(history, self.cfg.alarms)
        if fired:
            record_alarms(self.alarms_file, fired)
        return fired


def _grouped(prompt_ids: Sequence[str], texts: Sequence[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = defaultdict(list)
    for pid, text in zip(prompt_ids, texts):
        groups[pid].append(text)
    return groups


def _stable_hash(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little") >> 1


def _text(value) -> str:
    """A column value as text (DPO's columns may be chat-message lists)."""
    if isinstance(value, list):
        return " ".join(m.get("content", "") if isinstance(m, dict) else str(m) for m in value)
    return value or ""
