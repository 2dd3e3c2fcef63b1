"""The filter funnel: how many of a round's samples are left after each stage, in order.

generated -> each gate (in the order they ran) -> threshold -> difficulty band -> exact dup ->
K cap -> near dup -> contamination. The middle stages come from the update's own counts
(`filter/dropped_*`, logged by the SFT-style algorithms); for an algorithm that does not
report them (DPO pairs, GRPO prompts) the funnel stops after the gates rather than guess.
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

# (funnel stage, the filter metrics counting what it dropped), after the threshold
LATER_STAGES = (("band", ("filter/dropped_out_of_band",)), ("exact_dup", ("filter/dropped_duplicate",)),
                ("k_cap", ("filter/dropped_over_cap",)),
                ("near_dup", ("filter/near_dup/dropped_earlier", "filter/near_dup/dropped_round")),
                ("contamination", ("filter/contamination/dropped",)))


def funnel_counts(rejected: Counter, gates: Sequence[str], filter_metrics: dict) -> dict[str, float]:
    """`funnel/<stage>`: samples left after each stage. `rejected` counts the values of
    scored.parquet's `rejected_by` column ('' = passed every gate); `gates` are the gate names
    in the order they ran."""
    generated = float(sum(rejected.values()))
    out, left = {"funnel/generated": generated}, generated
    for gate in gates:
        left -= rejected.get(gate, 0)
        out[f"funnel/gate_{gate}"] = left
    if "filter/dropped_below_threshold" not in filter_metrics:
        return out
    left = generated - filter_metrics["filter/dropped_below_threshold"]  # it counts gate rejects too
    out["funnel/threshold"] = left
    for stage, keys in LATER_STAGES:
        if keys[0] in filter_metrics:
            left -= sum(filter_metrics.get(k, 0.0) for k in keys)
            out[f"funnel/{stage}"] = left
    return out


def stage_order(record: dict) -> list[str]:
    """The funnel keys of a metrics record in pipeline order. Gates sort by what is left after
    them, which falls along the pipeline (metrics.jsonl itself sorts keys by name)."""
    gates = sorted((k for k in record if k.startswith("funnel/gate_")), key=lambda k: -record[k])
    order = ["funnel/generated", *gates, "funnel/threshold", *(f"funnel/{s}" for s, _ in LATER_STAGES)]
    return [k for k in order if k in record]
