#!/usr/bin/env bash
# Stage two from every cluster head, on the validation split of bench/validation_split.sh
# (t10k never read): for each run with cluster heads and each seed, the cluster readout alone
# (`strata probe --method readout`, beside the kept head's matched clusters) and the classifier
# fine-tuned on the labeled images plus the unlabeled ones the readout gives a class with
# probability >= P (`--cluster-labels P`), with the stage two chosen for `cluster` (every block
# unfrozen at the head's rate after the frozen phase). One JSON line per run. Build first:
# cargo build --release.
#
#   bench/readout_validation.sh [--seeds "0 1 2"] [--thresholds "0.01 0.3 0.5 0.9"] [--out FILE.jsonl] RUN...
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS="0 1 2"
THRESHOLDS="0.01 0.3 0.5 0.9"
OUT="bench/results/readout-validation-$(date -u +%Y%m%dT%H%M%S).jsonl"
RUNS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seeds) SEEDS="$2"; shift 2 ;;
        --thresholds) THRESHOLDS="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        -*) echo "unknown flag $1" >&2; exit 2 ;;
        *) RUNS+=("$1"); shift ;;
    esac
done
source "$(dirname "$0")/validation_split.sh"
for seed in $SEEDS; do
    for from in "${RUNS[@]}"; do
        name=$(basename "$from")
        "$BIN" probe "$from" --train "$SPLIT:train" --test "$SPLIT:test" --labels-per-class 10 --seed "$seed" \
            --method cluster,readout --no-ceiling --json \
            | python3 -c 'import json, sys
for line in sys.stdin:
    p = json.loads(line)
    print(json.dumps({"name": sys.argv[1] + "-" + p["method"], "seed": int(sys.argv[2]), "val_accuracy": p["accuracy"], "seconds": p["seconds"], "args": "probe --method " + p["method"]}))' "$name" "$seed" | tee -a "$OUT"
        for p in $THRESHOLDS; do
            run "$name-labels$p" "$seed" "$from" --cluster-labels "$p" --unfreeze-top 3 --lr-mult 1
        done
    done
done
