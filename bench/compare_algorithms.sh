#!/usr/bin/env bash
# Every update algorithm on the CPU demo, same generation budget (1024 prompts x 4 samples per
# round), same rounds, same seed and round 0; then one table and one plot of held-out accuracy.
#
#   bash bench/compare_algorithms.sh                 # all five, 3 rounds each
#   ROUNDS=5 bash bench/compare_algorithms.sh rft dpo  # a subset, longer
#
# Runs land in runs/cmp_<algorithm>, all in the W&B group `compare-algorithms`. A finished run
# is not redone (`loop run` continues a run dir with the same config); delete it to start over.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
ALGORITHMS=("${@:-rft star rest_em dpo grpo}")
read -r -a ALGORITHMS <<< "${ALGORITHMS[*]}"

common=(--set "rounds=$ROUNDS" --set control.enabled=false --set tracking.group=compare-algorithms)
declare -A extra=(
  [rft]=""
  [star]="--set update.algorithm=star"
  # K = 2 of 4 samples per problem (the paper: 10 of 32); init: base is ReST-EM's default.
  [rest_em]="--set update.algorithm=rest_em --set update.max_per_prompt=2"
  # RPO: DPO + NLL on the chosen answer; one pair per prompt (best vs worst sample).
  [dpo]="--set update.algorithm=dpo --set update.learning_rate=2e-4 --set update.epochs=1"
  # One pass over the prompts with a learning signal, 16 prompts x 4 completions per step.
  [grpo]="--set update.algorithm=grpo --set update.learning_rate=1e-4 --set update.grpo.prompts_per_step=16"
)

runs=()
for algorithm in "${ALGORITHMS[@]}"; do
  name="cmp_$algorithm"
  # shellcheck disable=SC2086  # the extra flags are meant to split
  /usr/bin/time -f "$name wall %e s, peak RSS %M KB" \
    loop run configs/demo.yaml "${common[@]}" --set "name=$name" ${extra[$algorithm]}
  runs+=("runs/$name")
done
loop compare "${runs[@]}" --out runs/compare_algorithms.png
