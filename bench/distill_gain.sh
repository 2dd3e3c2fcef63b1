#!/usr/bin/env bash
# Distillation vs self-training on the same student (configs/demo_distill.yaml: a 1-layer student,
# 128 seed examples, 512 prompts x 4 samples per round, the same seed and round 0):
#   self     no teacher, RFT on the student's own filtered samples
#   distill  `teacher.mode: mixed` (the teacher answers the prompts the student fails), RFT
#   gkd      the config as shipped: mixed teacher rollouts + GKD on the teacher's logits
# then held-out greedy pass@1 per round and its gain per round, side by side.
#
#   TEACHER=runs/demo/round_005/checkpoint bash bench/distill_gain.sh          # self distill gkd
#   TEACHER=... ROUNDS=2 bash bench/distill_gain.sh self distill              # a subset
#
# The teacher is the demo's trained policy (`loop run` first; a bigger tiny model trained longer).
# Runs land in runs/distill_<variant>; a finished run is not redone.
set -euo pipefail
cd "$(dirname "$0")/.."
TEACHER=${TEACHER:-runs/demo/round_005/checkpoint}
ROUNDS=${ROUNDS:-3}
VARIANTS=("${@:-self distill gkd}")
read -r -a VARIANTS <<< "${VARIANTS[*]}"
[ -f "$TEACHER/config.json" ] || { echo "error: TEACHER=$TEACHER is not a model directory; run the demo first (loop run)" >&2; exit 2; }

common=(--set "rounds=$ROUNDS" --set tracking.group=distill-gain --set "teacher.model=$TEACHER"
        --set "update.gkd.teacher=$TEACHER")
declare -A extra=(
  [self]="--set teacher=null --set update.algorithm=rft"
  [distill]="--set update.algorithm=rft"
  [gkd]=""
)

runs=()
for variant in "${VARIANTS[@]}"; do
  name="distill_$variant"
  # shellcheck disable=SC2086  # the extra flags are meant to split
  loop run configs/demo_distill.yaml "${common[@]}" --set "name=$name" ${extra[$variant]}
  runs+=("runs/$name")
done

python - "${runs[@]}" <<'EOF'
import json, sys
from pathlib import Path

runs = {Path(p).name: [json.loads(l) for l in (Path(p) / "metrics.jsonl").read_text().splitlines() if l.strip()]
        for p in sys.argv[1:]}
print(f"{'run':<16} " + " | ".join(f"round {r['round']}" for r in next(iter(runs.values()))) + " | mean gain/round | teacher share")
for name, rows in runs.items():
    acc = [r["eval/pass@1"] for r in rows]
    gains = [b - a for a, b in zip(acc, acc[1:])]
    share = [r.get("distill/teacher_share") for r in rows[1:]]
    cells = [f"{acc[0]:.1%}"] + [f"{a:.1%} ({g:+.1%})" for a, g in zip(acc[1:], gains)]
    mean = sum(gains) / len(gains) if gains else float("nan")
    shares = ", ".join(f"{s:.2f}" for s in share if s is not None) or "-"
    print(f"{name:<16} " + " | ".join(cells) + f" | {mean:+.1%} | {shares}")
EOF
