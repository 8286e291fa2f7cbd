# Sourced by the validation scripts: makes the validation split (labels drawn from the first
# 50 000 MNIST training images, accuracy measured on the other 10 000; t10k is never read) and
# defines `run NAME SEED FROM [finetune flags...]`, which fine-tunes on it and appends one JSON
# line to $OUT.
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
    echo "{\"name\": \"$name\", \"seed\": $seed, \"val_accuracy\": $acc, \"seconds\": $(printf "%.3f" "$(echo "$t1 - $t0" | bc)"), \"args\": \"$*\"}" | tee -a "$OUT"
}
