#!/usr/bin/env bash
# ResNet-18 on all of Fashion-MNIST: SimCLR and BYOL x baseline / natural / mi x 3 seeds, 50 epochs each,
# on one GPU. Prints the Markdown table and writes benchmarks/results/downstream_gpu_<date>.json; paste the
# table, the card's name (it is in the JSON's "device") and the command into docs/results.md.
#
#   bash benchmarks/run_gpu_downstream.sh            # the full grid (18 runs)
#   EPOCHS=2 SEEDS=0 bash benchmarks/run_gpu_downstream.sh   # a quick check of the script
#
# The GPU machines reach no package registry or web: Fashion-MNIST must be on disk. The script looks in
# $MI_AUGMENT_FASHION_MNIST, /usr/share/datasets/fashion-mnist, then ./shared/fashion-mnist (copy the four
# *-ubyte.gz files there, 31 MB). Finished runs are reused, so an interrupted script continues.
set -euo pipefail
cd "$(dirname "$0")/.."

EPOCHS="${EPOCHS:-50}"
SEEDS="${SEEDS:-0,1,2}"
METHODS="${METHODS:-simclr,byol}"
MODES="${MODES:-baseline,natural,mi}"

if [ -z "${MI_AUGMENT_FASHION_MNIST:-}" ]; then
  for d in /usr/share/datasets/fashion-mnist shared/fashion-mnist; do
    if [ -f "$d/train-images-idx3-ubyte.gz" ]; then export MI_AUGMENT_FASHION_MNIST="$d"; break; fi
  done
fi
if [ -z "${MI_AUGMENT_FASHION_MNIST:-}" ]; then
  echo "Fashion-MNIST files not found: set MI_AUGMENT_FASHION_MNIST or copy them to shared/fashion-mnist" >&2
  exit 2
fi
case "$MI_AUGMENT_FASHION_MNIST" in /*) ;; *) export MI_AUGMENT_FASHION_MNIST="$PWD/$MI_AUGMENT_FASHION_MNIST";; esac

python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print('GPU:', torch.cuda.get_device_name())"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

python benchmarks/downstream.py --budget gpu --epochs "$EPOCHS" --seeds "$SEEDS" --methods "$METHODS" \
  --modes "$MODES" --runs "runs/downstream_gpu_e${EPOCHS}"
