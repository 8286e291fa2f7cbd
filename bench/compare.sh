#!/usr/bin/env bash
# strata against the PyTorch peer (../shared/peer/torch_pipeline.py), side by side in one run.
#
# Train steps: `strata bench` and `torch_pipeline.py bench` alternate (A B A B ...), PAIRS pairs
# per thread count; each pair's ratio strata/torch is printed, then the median per figure.
# The machine is shared and noisy: the ratio of neighbouring runs is the figure, not the
# absolute images/s. Frozen phase (--frozen): the textbook recipe's frozen phase, 1000 labels,
# 30 epochs of batch 64 (480 steps), strata's `finetune` against the peer's `run`, paired too.
#
#   bench/compare.sh [--pairs 5] [--threads "1 2"] [--conv "strata burn"] [--venv DIR] [--frozen | --frozen-only] [--out FILE.jsonl]
#
# --conv lists the convolution implementations strata runs with in every pair (`strata --conv`):
# the default compares strata's own kernels and burn's against the same torch run.
#
# Without --venv, torch is installed into a throw-away virtual environment (PyPI's Linux torch
# wheel brings its CUDA runtime: several GB; keep this out of CI). PyTorch runs with the glibc
# malloc tunables that stop it returning its buffers to the OS every step; strata's binary uses
# mimalloc, which caches them by itself.
set -euo pipefail
cd "$(dirname "$0")/.."

PAIRS=5
THREADS="1 2"
CONVS="strata burn"
VENV=""
FROZEN=0
STEPS=1
OUT="bench/results/compare-$(date -u +%Y%m%dT%H%M%S).jsonl"
while [ $# -gt 0 ]; do
    case "$1" in
        --pairs) PAIRS="$2"; shift 2 ;;
        --threads) THREADS="$2"; shift 2 ;;
        --conv) CONVS="$2"; shift 2 ;;
        --venv) VENV="$2"; shift 2 ;;
        --frozen) FROZEN=1; shift ;;
        --frozen-only) FROZEN=1; STEPS=0; shift ;;
        --out) OUT="$2"; shift 2 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "compare.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done

PEER=../shared/peer/torch_pipeline.py
[ -f "$PEER" ] || { echo "compare.sh: the PyTorch peer is not at $PEER" >&2; exit 1; }
if [ -z "$VENV" ]; then
    VENV="$(mktemp -d)/torch-venv"
    echo "installing torch into the throw-away environment $VENV (several GB) ..." >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q torch numpy >&2
fi
PY="$VENV/bin/python"
"$PY" -c 'import torch' || { echo "compare.sh: $VENV has no torch" >&2; exit 1; }

cargo build --release -p strata --features bench >&2
STRATA=target/release/strata
mkdir -p "$(dirname "$OUT")"
: > "$OUT"
TUNED="glibc.malloc.mmap_threshold=67108864:glibc.malloc.trim_threshold=268435456"

for t in $THREADS; do
    [ "$STEPS" = 1 ] || break
    for i in $(seq "$PAIRS"); do
        for c in $CONVS; do
            "$STRATA" bench --conv "$c" --threads "$t" --cases ae_train_step,clf_train_step --steps 30 --repeats 3 \
                | sed "s/^{/{\"pair\":$i,\"conv\":\"$c\",/" >> "$OUT"
        done
        GLIBC_TUNABLES="$TUNED" "$PY" "$PEER" bench --threads "$t" --steps 30 --repeats 3 \
            | sed "s/^{/{\"pair\":$i,/" >> "$OUT"
        echo "threads $t: pair $i of $PAIRS done" >&2
    done
done

if [ "$FROZEN" = 1 ]; then
    work="$(mktemp -d)"
    "$STRATA" pretrain --data data/mnist5k --epochs 1 --out "$work/ae" -q > /dev/null
    for t in $THREADS; do
        for i in $(seq "$PAIRS"); do
            RAYON_NUM_THREADS="$t" "$STRATA" finetune --from "$work/ae" --train data/mnist5k:train \
                --labels-per-class 100 --frozen-steps 480 --unfreeze-steps 0 --out "$work/ft" --force -q > /dev/null
            python3 - "$work/ft/manifest.json" "$t" "$i" >> "$OUT" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
p = m["phases"][0]
print(json.dumps({"pair": int(sys.argv[3]), "bench": "frozen_phase", "impl": "strata", "threads": int(sys.argv[2]),
                  "steps": p["steps"], "seconds": p["seconds"]}))
PY
            GLIBC_TUNABLES="$TUNED" "$PY" "$PEER" run --labels 1000 --seed 0 --threads "$t" --data data/mnist5k \
                --ae-epochs 1 --frozen-epochs 30 --finetune-epochs 1 \
                | python3 -c 'import json,sys; r=json.loads(sys.stdin.readline()); print(json.dumps({"pair": int(sys.argv[2]), "bench": "frozen_phase", "impl": "torch", "threads": int(sys.argv[1]), "seconds": r["stage2a_frozen_s"]}))' "$t" "$i" >> "$OUT"
            echo "frozen phase, threads $t: pair $i of $PAIRS done" >&2
        done
    done
    rm -rf "$work"
fi

python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def key(r):
    return (r["bench"], r.get("threads") or r.get("torch_num_threads"), r["pair"])
strata = {(r.get("conv", "strata"),) + key(r): r for r in rows if r["impl"] == "strata"}
torch = {key(r): r for r in rows if r["impl"] == "torch"}
print(f"{'figure':<16} {'conv':>6} {'threads':>7} {'pair':>4} {'strata':>10} {'torch':>10} {'ratio':>7}")
summary = {}
for ck in sorted(strata):
    conv, k = ck[0], ck[1:]
    if k not in torch:
        continue
    s, t = strata[ck], torch[k]
    if k[0] == "frozen_phase":
        a, b = s["seconds"], t["seconds"]
        ratio = b / a  # speed-up: torch seconds over strata seconds
        unit = "s"
    else:
        a, b = s["img_s_median"], t["img_s_median"]
        ratio = a / b
        unit = "img/s"
    summary.setdefault((k[0], conv, k[1]), []).append(ratio)
    print(f"{k[0]:<16} {conv:>6} {k[1]:>7} {k[2]:>4} {a:>10.1f} {b:>10.1f} {ratio:>7.2f}  ({unit})")
print()
print("median of the paired ratios (strata/torch images/s; for frozen_phase torch/strata seconds):")
for (bench, conv, threads), r in sorted(summary.items()):
    print(f"  {bench:<16} conv {conv:<6} threads {threads}: {statistics.median(r):.2f}  (range {min(r):.2f}-{max(r):.2f}, {len(r)} pairs)")
print(f"raw lines: {sys.argv[1]}")
PY
