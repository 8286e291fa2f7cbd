#!/usr/bin/env bash
# How stage two's defaults were chosen, never on the test set: labels drawn from the first
# 50 000 MNIST training images, accuracy measured on the other 10 000 training images.
# One JSON line per run. Build first: cargo build --release.
#
#   bench/stage2_validation.sh [--seeds "0 1"] [--from RUN] [--out FILE.jsonl]
#
# Without --from, only the scratch comparisons run (augmentation kinds, step count); with a
# pretrained run (e.g. runs/label_efficiency/pretrain-siamese) the stage-two choices on it
# run too: the feature cache's augmented draws, the prototype head, how much to unfreeze.
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS="0 1"
FROM=""
OUT="bench/results/stage2-validation-$(date -u +%Y%m%dT%H%M%S).jsonl"
while [ $# -gt 0 ]; do
    case "$1" in
        --seeds) SEEDS="$2"; shift 2 ;;
        --from) FROM="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        *) echo "unknown flag $1" >&2; exit 2 ;;
    esac
done
source "$(dirname "$0")/validation_split.sh"
for seed in $SEEDS; do
    run affine "$seed" scratch
    run elastic "$seed" scratch --augment-elastic 34
    run cutout "$seed" scratch --augment-cutout 0.25
    run steps1000 "$seed" scratch --frozen-steps 1000 --unfreeze-steps 0
done
if [ -n "$FROM" ]; then
    for seed in $SEEDS; do
        run default "$seed" "$FROM"
        run draws0 "$seed" "$FROM" --cache-draws 0
        run prototype "$seed" "$FROM" --head-init prototype
        run ncm "$seed" "$FROM" --head-init prototype --frozen-steps 0 --unfreeze-steps 0
        run unfreeze3 "$seed" "$FROM" --unfreeze-top 3
        run unfreeze3-lr1 "$seed" "$FROM" --unfreeze-top 3 --lr-mult 1
    done
fi
echo "wrote $OUT" >&2
