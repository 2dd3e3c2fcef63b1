"""RLAIF preference pairs from an AI judge (Bai et al. 2022, Sec. 4): two samples of a prompt,
a principle drawn from the constitution, and the judge's choice between them under it.

The judge is the live policy (`cai.judge: {backend: policy}`, the default), a local model
(`backend: hf`) or an OpenAI-compatible server (`backend: openai`): the `judge` reward in
pairwise mode, whose rubric is `cai.judge_template` with the principle filled in. Each pair is
asked in both orders to cancel position bias; a pair is kept only when both answers are
readable and name the same sample. A verdict that flips with the order is a tie; a pair with
an unreadable (or failed) answer is unparseable; two identical samples are not asked at all.
Every pair lands in `round_NNN/constitution.parquet` with both of the judge's answers.
"""

from __future__ import annotations

from collections import defaultdict

import torch
from datasets import Dataset

from policies.schema import ACCEPT_RATE
from policies.tables import ScoredRollouts
from policies.updates.base import BuildContext
from policies.updates.config import CAISettings, Principle

JUDGE_DROPS = ("identical", "tie", "unparseable")


def first_two_samples(scored: ScoredRollouts) -> list[tuple[dict, dict]]:
    """Each prompt's two lowest-indexed samples (prompts with fewer than two are skipped)."""
    by_prompt: dict[str, list[dict]] = defaultdict(list)
    for row in scored.records(["prompt_id", "sample_index", "prompt", "prompt_text", "completion"]):
        by_prompt[row["prompt_id"]].append(row)
    pairs = []
    for rows in by_prompt.values():
        rows.sort(key=lambda r: r["sample_index"])
        if len(rows) >= 2:
            pairs.append((rows[0], rows[1]))
    return pairs


def judge_pairs(settings: CAISettings, principles: list[Principle], scored: ScoredRollouts, ctx: BuildContext,
                draw) -> Dataset:
    """One row per prompt: samples a and b, the principle, both judge answers, the winner, and
    why the pair was dropped ("" when kept). `draw(principles, round, prompt_id, 0)` picks the principle."""
    pairs = first_two_samples(scored)
    drawn = [draw(principles, ctx.round, a["prompt_id"], 0) for a, _ in pairs]
    verdicts: list = [None] * len(pairs)
    by_principle: dict[int, list[int]] = defaultdict(list)
    for i, ((a, b), p) in enumerate(zip(pairs, drawn)):
        if " ".join(a["completion"].split()) != " ".join(b["completion"].split()):
            by_principle[principles.index(p)].append(i)
    torch.manual_seed(ctx.round)  # the filter phase reruns whole on resume: the same verdicts
    for index, members in sorted(by_principle.items()):
        principle = principles[index]
        judge = settings.build_judge(principle.preference or principle.critique)
        if judge.needs_model == "policy":
            if ctx.policy is None:
                raise RuntimeError("cai: the judge is the policy, but no policy generator was given")
            judge.attach(ctx.policy)
        elif judge.needs_model == "model":
            from policies.judges import attach_judges

            attach_judges([judge], None)
        found = judge.compare_many([(pairs[i][0]["prompt"], pairs[i][0]["completion"], pairs[i][1]["completion"])
                                    for i in members])
        for i, verdict in zip(members, found):
            verdicts[i] = verdict
    return Dataset.from_dict({
        "prompt_id": [a["prompt_id"] for a, _ in pairs], "prompt_text": [a["prompt_text"] for a, _ in pairs],
        "a": [a["completion"] for a, _ in pairs], "b": [b["completion"] for _, b in pairs],
        "principle": [p.name or p.critique for p in drawn],
        "judge_answers": [v.reason if v is not None else "" for v in verdicts],
        "winner": [(v.winner or "") if v is not None and v.flipped is False else "" for v in verdicts],
        "dropped": [_why_dropped(v) for v in verdicts]})


def _why_dropped(verdict) -> str:
    if verdict is None:
        return "identical"
    if verdict.flipped is None:  # at least one order unreadable: position bias not cancelled
        return "unparseable"
    return "tie" if verdict.flipped else ""


def pairs_and_metrics(log: Dataset, scored_count: int) -> tuple[dict[str, list], dict[str, float]]:
    """DPO columns (the judge's pick chosen over the other) and the round's `cai/*` figures."""
    kept = log.filter(lambda row: row["dropped"] == "")
    chosen = [r["a"] if r["winner"] == "a" else r["b"] for r in kept]
    rejected = [r["b"] if r["winner"] == "a" else r["a"] for r in kept]
    dropped = log["dropped"][:]
    metrics = {"cai/judged_pairs": float(sum(d != "identical" for d in dropped)), "cai/pairs": float(len(kept)),
               **{f"cai/dropped_{why}": float(sum(d == why for d in dropped)) for why in JUDGE_DROPS},
               ACCEPT_RATE: 2 * len(kept) / max(scored_count, 1)}  # samples the update learns from
    columns = {"prompt": kept["prompt_text"][:], "prompt_id": kept["prompt_id"][:],
               "chosen": chosen, "rejected": rejected}
    return columns, metrics
