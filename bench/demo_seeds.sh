#!/usr/bin/env bash
# The CPU demo (configs/demo.yaml) with several seeds: how much its headline numbers move.
# Each seed draws its own task split, seed set, model init and samples.
#
#   bash bench/demo_seeds.sh            # seeds 0 1 2
#   bash bench/demo_seeds.sh 3 4        # other seeds
#
# Runs land in runs/demo_seed<N> (W&B group `demo-seeds`); a finished run is not redone.
# Prints, per seed, round 0 -> last round held-out greedy accuracy, the gain, the control and
# loop - control, then the range over seeds (the figures README quotes).
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=("${@:-0 1 2}")
read -r -a SEEDS <<< "${SEEDS[*]}"
runs=()
for seed in "${SEEDS[@]}"; do
  name="demo_seed$seed"
  /usr/bin/time -f "$name wall %e s, peak RSS %M KB" \
    loop run configs/demo.yaml --set "seed=$seed" --set "name=$name" --set tracking.group=demo-seeds
  runs+=("runs/$name")
done
python - "${runs[@]}" <<'PY'
import json, sys
rows = []
for run in sys.argv[1:]:
    metrics = [json.loads(line) for line in open(f"{run}/metrics.jsonl")]
    first, last = metrics[0]["eval/pass@1"], metrics[-1]["eval/pass@1"]
    control = metrics[-1].get("control/pass@1", float("nan"))
    rows.append((run, first, last, last - first, control, last - control))
    print(f"{run}: {first:.1%} -> {last:.1%} (gain {100 * (last - first):+.1f} pts), "
          f"control {control:.1%}, loop - control {100 * (last - control):+.1f} pts")
for i, what in ((3, "gain"), (5, "loop - control")):
    values = [100 * r[i] for r in rows]
    print(f"{what}: {min(values):+.1f} to {max(values):+.1f} points over {len(rows)} seeds")
PY
