#!/usr/bin/env bash
# Every GPU check of the project in one call (sized for a 15-minute device budget; about 8-9 minutes).
# Prepare here with `bash benchmarks/prepare_gpu_carry.sh`, then run through the device tool with
#   carry: [".gpu_carry"]   command: bash benchmarks/run_gpu.sh
# Results come back under $OUT (JSON per benchmark + a log); copy the tables into docs/ with the card's name.
#   DOWNSTREAM_EPOCHS=0 skips the short training comparison.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-runs/gpu_out}"; mkdir -p "$OUT"
exec > >(tee "$OUT/run_gpu.log") 2>&1
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ls .gpu_carry/whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .gpu_carry/whl/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
[ -d .gpu_carry/data ] && export MI_AUGMENT_DATA="$PWD/.gpu_carry/data" MI_AUGMENT_FASHION_MNIST="$PWD/.gpu_carry/data"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
git rev-parse --short HEAD 2>/dev/null || true

echo "== 1. CUDA correctness: CPU vs CUDA, every test marked cuda (+ the registry on CUDA)"
timeout 180 python3 -m pytest -q -m cuda -p no:cacheprovider tests/ 2>&1 | tail -15

echo "== 2. MI estimators on the GPU (pairs/s for KSG all-pairs and histogram 32x32)"
timeout 150 python3 benchmarks/mi_estimators.py --device cuda --out "$OUT/mi_estimators_cuda.json" --figure "$OUT/mi_estimators_bias_cuda.png"

echo "== 3. Pair throughput vs torchvision / Kornia on the GPU"
timeout 150 python3 benchmarks/throughput.py --device cuda && cp benchmarks/results/throughput_cuda.json "$OUT/" 2>/dev/null

echo "== 4. Natural perturbations vs ColorJitter on the GPU"
timeout 60 python3 benchmarks/perturbations.py --device cuda --skip-fit && cp benchmarks/results/perturbations_cuda.json "$OUT/" 2>/dev/null

EPOCHS="${DOWNSTREAM_EPOCHS:-10}"
if [ "$EPOCHS" != 0 ]; then
  echo "== 5. Short downstream comparison (SimCLR, ResNet-18, 10k Fashion-MNIST images, baseline/natural/mi, 3 seeds, $EPOCHS epochs)"
  timeout 240 python3 benchmarks/downstream.py --budget gpu --epochs "$EPOCHS" --seeds 0,1,2 --methods simclr \
    --modes baseline,natural,mi --runs runs/downstream_gpu_e"$EPOCHS" --results-dir "$OUT" \
    --train-subset 10000 --linear-epochs 30
fi
echo "== done"
