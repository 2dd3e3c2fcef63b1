#!/usr/bin/env bash
# The issue's "done means" check: the CPU demo (configs/demo.yaml) with
# `rollout.engine=vllm_server` against TWO stand-in servers (tests/openai_server.py, each its
# own process, a real tiny HF model behind vLLM's routes), next to the same config with `hf`.
# Both runs should show the same demo gain, within seed noise (bench/demo_seeds.sh).
#
#   bash bench/demo_vllm_server.sh          # seed 0
#   bash bench/demo_vllm_server.sh 1        # another seed
#   PORT=19000 bash bench/demo_vllm_server.sh   # servers on 19000 and 19001 (default 18000, 18001)
#
# Runs land in runs/demo_<engine>_seed<N>; a finished run is not redone, an interrupted one
# resumes (the servers come back on the same ports, so the run's config is unchanged). The servers start from
# a tiny model of the demo's architecture; the engine reloads each round's checkpoint into
# them in place (round 0's included), as it would with `vllm serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
SEED="${1:-0}"
PY="${PYTHON:-python}"
base="runs/demo_vllm_server_base_seed$SEED"
"$PY" - "$base" "$SEED" <<'PY'
import sys
from pathlib import Path
from loop.config import load_config
from policies.loading import build_tiny
out = Path(sys.argv[1])
if not out.is_dir():
    build_tiny(load_config("configs/demo.yaml").model, int(sys.argv[2]), out)
PY

pids=()
trap 'for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done' EXIT
urls=()
for i in 0 1; do
  log="$base/server_$i.log"
  "$PY" tests/openai_server.py "$base" --port $(( ${PORT:-18000} + i )) > "$log" 2>&1 &
  pids+=("$!")
  for _ in $(seq 120); do grep -q "serving" "$log" && break; sleep 0.5; done
  urls+=("$(sed -n 's/^serving .* at //p' "$log")")
  [ -n "${urls[$i]}" ] || { echo "stand-in server $i did not start (port taken?): see $log" >&2; exit 1; }
done
echo "stand-in servers: ${urls[*]}"

servers="[${urls[0]}, ${urls[1]}]"
common=(--set "seed=$SEED" --set tracking.wandb=false)
/usr/bin/time -f "vllm_server wall %e s" loop run configs/demo.yaml "${common[@]}" --set "name=demo_vllm_server_seed$SEED" \
  --set rollout.engine=vllm_server --set "rollout.servers=$servers" --set rollout.kv_cache=dynamic
/usr/bin/time -f "hf wall %e s" loop run configs/demo.yaml "${common[@]}" --set "name=demo_hf_seed$SEED"

"$PY" - "runs/demo_hf_seed$SEED" "runs/demo_vllm_server_seed$SEED" <<'PY'
import json, sys
for run in sys.argv[1:]:
    metrics = [json.loads(line) for line in open(f"{run}/metrics.jsonl")]
    curve = " ".join(f"{m['eval/pass@1']:.3f}" for m in metrics)
    control = " ".join(f"{m.get('control/pass@1', float('nan')):.3f}" for m in metrics)
    first, last = metrics[0]["eval/pass@1"], metrics[-1]["eval/pass@1"]
    gen = sum(m.get("time/generate_s", 0) for m in metrics)
    swap = sum(m.get("time/swap_s", 0) for m in metrics)
    print(f"{run}\n  eval/pass@1 by round: {curve}\n  control/pass@1:       {control}\n"
          f"  gain {100 * (last - first):+.1f} pts, loop - control {100 * (last - metrics[-1]['control/pass@1']):+.1f} pts, "
          f"generate {gen:.0f} s, swap {swap:.1f} s")
PY
