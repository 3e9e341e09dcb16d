#!/usr/bin/env bash
# Run HERE (a machine with PyPI access) before a GPU session: collects what the GPU machine lacks into
# .gpu_carry/ (git-ignored), to be named in the device tool's `carry`:
#   .gpu_carry/whl   kornia + kornia_rs wheels for the GPU image's Python 3.12 (it has torch, opencv,
#                    scikit-learn, matplotlib, tqdm, pytest and hypothesis already)
#   .gpu_carry/data  the sample clips (bikes, carphone, vtest, tree, memorial) and Fashion-MNIST's 4 files
#   .gpu_carry/models  issue 22's refitted natural models (runs/ablation/cpu_shift/natural_models), if present
# Then on the GPU machine:  bash benchmarks/run_gpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qxF '/.gpu_carry/' .git/info/exclude 2>/dev/null || echo '/.gpu_carry/' >> .git/info/exclude
mkdir -p .gpu_carry/whl .gpu_carry/data
plat=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
for pkg in "kornia==$(python3 -c 'import kornia; print(kornia.__version__)')" "kornia_rs"; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${plat[@]}" -d .gpu_carry/whl "$pkg"
done
python3 - <<'PY'
import shutil
from mi_augment.datasets.samples import available_samples, fashion_mnist_dir
for name, path in available_samples().items():
    shutil.copy(path, ".gpu_carry/data/")
fm = fashion_mnist_dir()
for f in fm.glob("*-ubyte.gz"):
    shutil.copy(f, ".gpu_carry/data/")
PY
# issue 22's natural models, refitted without the held-out clips (BUDGET=gpu_shift), when a CPU grid made them
mkdir -p .gpu_carry/models
cp runs/ablation/cpu_shift/natural_models/*.json .gpu_carry/models/ 2>/dev/null || true
du -sh .gpu_carry
