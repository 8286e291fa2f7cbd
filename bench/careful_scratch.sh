#!/usr/bin/env bash
# The scratch baseline side by side with the PyTorch peer's careful one
# (../shared/peer/careful_scratch.py), in one run on the same machine: for each label count and
# seed, the peer, strata's same-recipe scratch (`strata train`, finetune's default recipe) and
# strata's untuned scratch (strata 0.2's schedule). One JSON line per run.
#
#   bench/careful_scratch.sh --venv DIR [--per-class "10 100"] [--seeds "0 1 2"] [--out FILE.jsonl]
#
# Labels are drawn by each program's own stratified sampler, so a seed's labels differ between
# the two; compare means over seeds. Build first: cargo build --release.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=""
PER_CLASS="10 100"
SEEDS="0 1 2"
OUT="bench/results/careful-scratch-$(date -u +%Y%m%dT%H%M%S).jsonl"
while [ $# -gt 0 ]; do
    case "$1" in
        --venv) VENV="$2"; shift 2 ;;
        --per-class) PER_CLASS="$2"; shift 2 ;;
        --seeds) SEEDS="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        *) echo "unknown flag $1" >&2; exit 2 ;;
    esac
done
[ -n "$VENV" ] || { echo "--venv DIR: a virtual environment with torch and numpy (see ../shared/peer/README.md)" >&2; exit 2; }
PEER="${PEER:-../shared/peer/careful_scratch.py}"
BIN=target/release/strata
DATA=data/mnist
mkdir -p "$(dirname "$OUT")"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
acc() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["accuracy"])' "$1/evaluation.json"; }
for n in $PER_CLASS; do
    for seed in $SEEDS; do
        "$VENV/bin/python" "$PEER" --data "$DATA" --per-class "$n" --seed "$seed" | tee -a "$OUT"
        t0=$(date +%s.%N)
        "$BIN" train --data "$DATA:train" --test "$DATA:test" --labels-per-class "$n" --seed "$seed" \
            --steps 3000 --out "$TMP/careful" --force --quiet > /dev/null
        t1=$(date +%s.%N)
        echo "{\"impl\": \"strata\", \"what\": \"careful_scratch\", \"per_class\": $n, \"seed\": $seed, \"steps\": 3000, \"test_accuracy\": $(acc "$TMP/careful"), \"seconds\": $(printf "%.3f" "$(echo "$t1 - $t0" | bc)")}" | tee -a "$OUT"
        t0=$(date +%s.%N)
        "$BIN" finetune --from scratch --train "$DATA:train" --test "$DATA:test" --labels-per-class "$n" \
            --seed "$seed" --frozen-steps 400 --unfreeze-steps 600 --schedule constant --warmup 0 \
            --label-smoothing 0 --weight-decay 0 --no-augment --out "$TMP/untuned" --force --quiet > /dev/null
        t1=$(date +%s.%N)
        echo "{\"impl\": \"strata\", \"what\": \"untuned_scratch\", \"per_class\": $n, \"seed\": $seed, \"steps\": 1000, \"test_accuracy\": $(acc "$TMP/untuned"), \"seconds\": $(printf "%.3f" "$(echo "$t1 - $t0" | bc)")}" | tee -a "$OUT"
    done
done
echo "wrote $OUT" >&2
