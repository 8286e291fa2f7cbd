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
BIN=target/release/strata
SPLIT=runs/validation-split
mkdir -p "$SPLIT" "$(dirname "$OUT")"
# the split: IDX files without gzip, train = images 0-49 999, t10k = images 50 000-59 999
python3 - "$SPLIT" <<'PY'
import gzip, sys
out = sys.argv[1]
def read(name):
    b = gzip.open(f"data/mnist/{name}-ubyte.gz").read()
    nd = b[3]; dims = [int.from_bytes(b[4 + 4 * i:8 + 4 * i], "big") for i in range(nd)]
    return dims, b[4 + 4 * nd:]
for kind, per in (("images-idx3", 784), ("labels-idx1", 1)):
    dims, body = read(f"train-{kind}")
    for name, lo, hi in (("train", 0, 50000), ("t10k", 50000, 60000)):
        hdr = bytes([0, 0, 8, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in [hi - lo] + dims[1:])
        open(f"{out}/{name}-{kind}-ubyte", "wb").write(hdr + body[lo * per:hi * per])
PY
run() {
    local name=$1 seed=$2 from=$3; shift 3
    local t0 t1 acc
    t0=$(date +%s.%N)
    "$BIN" finetune --from "$from" --train "$SPLIT:train" --test "$SPLIT:test" --labels-per-class 10 \
        --seed "$seed" --out "$SPLIT/runs/$name-s$seed" --force --quiet "$@" > /dev/null
    t1=$(date +%s.%N)
    acc=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["accuracy"])' "$SPLIT/runs/$name-s$seed/evaluation.json")
    echo "{\"name\": \"$name\", \"seed\": $seed, \"val_accuracy\": $acc, \"seconds\": $(echo "$t1 - $t0" | bc), \"args\": \"$*\"}" | tee -a "$OUT"
}
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
