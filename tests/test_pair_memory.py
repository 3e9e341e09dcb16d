"""MIPairTransform's peak memory is bounded by its working set, not by the batch size (issue 13 item 9):
huge batches of tiny images run under an address-space cap that one batch-sized scoring buffer would exceed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CHILD = r"""
import resource, sys, torch
torch.set_num_threads(1)
from mi_augment.transforms import MIPairTransform
with open("/proc/self/statm") as fh:
    in_use = int(fh.read().split()[0]) * resource.getpagesize()
cap = in_use + int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
# 20,000 1x1 images, K = 8: unchunked, the 32x32 proxies of every candidate alone are ~1.3 GB
views = MIPairTransform(1, n_candidates=8, illumination=False, motion=False)(torch.rand(20_000, 3, 1, 1))
assert views[0].shape == (20_000, 3, 1, 1)
# 100,000 4x4 images with the shipped models: one batch-sized float buffer per pass would be GBs
views = MIPairTransform(4, n_candidates=2)(torch.rand(100_000, 3, 4, 4))
assert views[1].shape == (100_000, 3, 4, 4) and bool(torch.isfinite(views[1]).all())
print("ok")
"""


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc are Linux-only")
def test_huge_batches_of_tiny_images_stay_within_a_fixed_working_set():
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", CHILD, str(600 * 2**20)], cwd=root, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-3000:]
