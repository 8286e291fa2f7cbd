#!/usr/bin/env bash
# Does stage two gain from starting its output layer at the parent's cluster head
# (`--head-init clusters`)? On the validation split of bench/validation_split.sh (t10k never
# read), each run with cluster heads is fine-tuned with a random head and with the cluster
# head, with the stage two chosen for `cluster` (every block unfrozen at the head's rate after
# the frozen phase) and with the reused blocks at a tenth of it, and read as the matched
# clusters alone (no step); and with the unlabeled images the head is sure of (p >= 0.99)
# joining the labeled ones as their cluster's class (`--cluster-labels`). One JSON line per run. Build first: cargo build --release.
#
# With --arch, the same architecture is also trained from scratch with the same recipe.
#
#   bench/cluster_head_validation.sh [--arch ARCH] [--seeds "0 1 2"] [--out FILE.jsonl] RUN...
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS="0 1 2"
ARCH=""
OUT="bench/results/cluster-head-validation-$(date -u +%Y%m%dT%H%M%S).jsonl"
RUNS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seeds) SEEDS="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --arch) ARCH="$2"; shift 2 ;;
        -*) echo "unknown flag $1" >&2; exit 2 ;;
        *) RUNS+=("$1"); shift ;;
    esac
done
source "$(dirname "$0")/validation_split.sh"
for seed in $SEEDS; do
    [ -z "$ARCH" ] || run "scratch-$ARCH" "$seed" scratch --arch "$ARCH"
    for from in "${RUNS[@]}"; do
        name=$(basename "$from")
        run "$name-clusters-0" "$seed" "$from" --head-init clusters --frozen-steps 0 --unfreeze-steps 0
        run "$name-random" "$seed" "$from" --unfreeze-top 3 --lr-mult 1
        run "$name-clusters" "$seed" "$from" --head-init clusters --unfreeze-top 3 --lr-mult 1
        run "$name-clusters-tenth" "$seed" "$from" --head-init clusters --unfreeze-top 3 --lr-mult 0.1
        run "$name-labels99" "$seed" "$from" --cluster-labels 0.99 --unfreeze-top 3 --lr-mult 1
        run "$name-clusters-labels99" "$seed" "$from" --head-init clusters --cluster-labels 0.99 --unfreeze-top 3 --lr-mult 1
    done
done
echo "wrote $OUT" >&2
