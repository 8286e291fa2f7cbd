#!/usr/bin/env bash
# How stage two is chosen for a pretraining method (issue 16), never on the test set: on the
# validation split of bench/validation_split.sh, each pretrained run is fine-tuned with the
# default recipe, with all its blocks unfrozen at the head's rate after the frozen phase, with
# no frozen phase at all, and read by its nearest class means; the same architecture is trained
# from scratch with the same recipe. One JSON line per run. Build first: cargo build --release.
#
#   bench/methods_validation.sh --arch ARCH [--seeds "0 1"] [--out FILE.jsonl] RUN...
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS="0 1"
ARCH=""
OUT="bench/results/methods-validation-$(date -u +%Y%m%dT%H%M%S).jsonl"
RUNS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seeds) SEEDS="$2"; shift 2 ;;
        --arch) ARCH="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        -*) echo "unknown flag $1" >&2; exit 2 ;;
        *) RUNS+=("$1"); shift ;;
    esac
done
[ -n "$ARCH" ] || { echo "--arch is required: the scratch row trains the same architecture" >&2; exit 2; }
source "$(dirname "$0")/validation_split.sh"
for seed in $SEEDS; do
    run "scratch-$ARCH" "$seed" scratch --arch "$ARCH"
    for from in "${RUNS[@]}"; do
        name=$(basename "$from")
        run "$name-default" "$seed" "$from"
        run "$name-unfreeze3-lr1" "$seed" "$from" --unfreeze-top 3 --lr-mult 1
        run "$name-full" "$seed" "$from" --frozen-steps 0 --unfreeze-steps 3000 --unfreeze-top 3 --lr-mult 1
        run "$name-ncm" "$seed" "$from" --head-init prototype --frozen-steps 0 --unfreeze-steps 0
    done
done
echo "wrote $OUT" >&2
