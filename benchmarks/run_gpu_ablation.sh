#!/usr/bin/env bash
# The matched-control ablation of issue 11 (and, with BUDGET=gpu_shift, issue 22's) on one GPU, in one device
# call (timeout_s <= 470).
# ResNet-18, every training image, 10 epochs, arms x 3 seeds as parallel processes (most informative
# first: P, B, S, then natural_matched (the one arm ahead on CPU, unconfirmed there), crop selection's oracle O
# and its overlap control I (fmnist_scenes only), the feature-scored F and the cross-image N, then natural;
# fmnist_scenes before fashion_mnist); each cell writes its
# JSON to $OUT/cells/ as it finishes, every cell is appended to $OUT/ablation_gpu.jsonl, and the summary
# (tables, CIs, Holm, verdicts) and bar chart are written to $OUT at the end, whatever finished.
#
# Prepare here:  bash benchmarks/prepare_gpu_carry.sh        (kornia wheels, the clips, Fashion-MNIST)
# Device tool:   carry [".gpu_carry"], timeout_s 470, command: bash benchmarks/run_gpu_ablation.sh
# Dry run here (CPU, tiny config, a minute or two):  bash benchmarks/run_gpu_ablation.sh --dry-run
# Then commit $OUT/ablation_gpu.jsonl into benchmarks/results/ and the tables into docs/results.md with the
# card's name (each record's "device").
#   LIMIT=seconds (default 440), PARALLEL=processes (default 6), EPOCHS, SEEDS, ARMS, DATASETS override.
#   ARMS=P,B,S,TG,RG adds the twin route's positive control (its calibration step mines 24 group videos once:
#   about 100 s of one core before any cell starts, so it is not in the default arms).
#   BUDGET=gpu_shift runs issue 22's grid (docs/results.md, rule of 2026-12-07): scenes from the training clips,
#   every cell also scored by track retrieval on the held-out clips and kNN@20 under both shifts; arms B,
#   natural_matched, natural_iso, natural, P, F, natural_fitted_jitter. Its natural models (refitted without the
#   held-out clips, ~200 s of CPU) come from .gpu_carry/models when prepare_gpu_carry.sh found them.
set -uo pipefail
cd "$(dirname "$0")/.."
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
OUT="${OUT:-runs/gpu_ablation_out}"
mkdir -p "$OUT/cells"
OUT="$(cd "$OUT" && pwd)"
exec > >(tee "$OUT/run_gpu_ablation.log") 2>&1
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python3}"

if [ "$DRY" = 1 ]; then
  BUDGET=tiny; DEVICE=cpu; DATASETS="${DATASETS:-synthetic}"; ARMS="${ARMS:-P,B,S}"; SEEDS="${SEEDS:-0,1}"
  EPOCHS="${EPOCHS:-1}"; PARALLEL="${PARALLEL:-2}"; LIMIT="${LIMIT:-200}"
else
  if ls .gpu_carry/whl/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
      .gpu_carry/whl/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/site"
  fi
  [ -d .gpu_carry/data ] && export MI_AUGMENT_DATA="$PWD/.gpu_carry/data" MI_AUGMENT_FASHION_MNIST="$PWD/.gpu_carry/data"
  BUDGET="${BUDGET:-gpu}"; DEVICE=cuda
  if [ "$BUDGET" = gpu_shift ]; then
    DATASETS="${DATASETS:-fmnist_scenes}"; ARMS="${ARMS:-B,natural_matched,natural_iso,natural,P,F,natural_fitted_jitter}"
    mkdir -p "${RUNS:-/tmp/mi_augment_ablation_runs}/gpu_shift/natural_models"
    cp .gpu_carry/models/*.json "${RUNS:-/tmp/mi_augment_ablation_runs}/gpu_shift/natural_models/" 2>/dev/null || true
  else
    DATASETS="${DATASETS:-fmnist_scenes,fashion_mnist}"; ARMS="${ARMS:-P,B,S,natural_matched,O,I,F,N,natural}"
  fi
  SEEDS="${SEEDS:-0,1,2}"; EPOCHS="${EPOCHS:-10}"
  PARALLEL="${PARALLEL:-6}"; LIMIT="${LIMIT:-440}"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
fi
export OMP_NUM_THREADS=2 MI_AUGMENT_SCENES_CACHE="${MI_AUGMENT_SCENES_CACHE:-/tmp/mi_augment_scenes}"
JSONL="$OUT/ablation_$BUDGET.jsonl"
RUNS="${RUNS:-/tmp/mi_augment_ablation_runs}"
DEADLINE=$((SECONDS + LIMIT))
COMMON=(--budget "$BUDGET" --device "$DEVICE" --epochs "$EPOCHS" --jsonl "$JSONL" --runs "$RUNS"
        --cell-json-dir "$OUT/cells" --figure "$OUT/ablation_$BUDGET.png")
git rev-parse --short HEAD 2>/dev/null || true
echo "== budget $BUDGET on $DEVICE: datasets $DATASETS, arms $ARMS, seeds $SEEDS, $EPOCHS epochs, $PARALLEL at once, ${LIMIT} s"

echo "== calibrations (S's matched scale, natural_matched's strength) and the generated datasets, once"
timeout $((DEADLINE - SECONDS)) "$PY" benchmarks/ablation.py "${COMMON[@]}" --datasets "$DATASETS" --arms "$ARMS" \
  --seeds "$SEEDS" --calibrate-only | grep -v '^|' || echo "calibration failed"

echo "== cells"
run_one() {  # dataset arm seed
  local left=$((DEADLINE - SECONDS))
  if [ "$left" -lt 30 ]; then echo "skip $1 $2 seed $3: ${left} s left"; return; fi
  timeout "$left" "$PY" benchmarks/ablation.py "${COMMON[@]}" --datasets "$1" --arms "$2" --seeds "$3" \
    --skip-untrained > "$OUT/cells/$1-$2-s$3.log" 2>&1 || echo "cell $1 $2 seed $3 failed or timed out (see its log)"
  grep -E "^  $1 " "$OUT/cells/$1-$2-s$3.log" || true
}
IFS=, read -ra DS <<< "$DATASETS"; IFS=, read -ra AS <<< "$ARMS"; IFS=, read -ra SS <<< "$SEEDS"
for d in "${DS[@]}"; do
  run_one "$d" untrained "$SEEDS" &  # every seed's untrained encoder, one process
  for a in "${AS[@]}"; do
    for s in "${SS[@]}"; do
      while [ "$(jobs -rp | wc -l)" -ge "$PARALLEL" ]; do sleep 1; done
      run_one "$d" "$a" "$s" &
    done
  done
done
wait $(jobs -p)  # the cells only: a bare `wait` would also wait for the log's tee

echo "== summary"
"$PY" benchmarks/ablation.py --budget "$BUDGET" --jsonl "$JSONL" --figure "$OUT/ablation_$BUDGET.png" --summary-only \
  | tail -n +3
cp "${JSONL%.jsonl}_summary.json" "$OUT/ablation_summary.json" 2>/dev/null || true
echo "== done in $SECONDS s"
