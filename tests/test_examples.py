"""Every runnable example of docs/integrations.md (docs/examples/*.py) runs as a user would run it."""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"
#: one example per ecosystem the integration page promises
REQUIRED = {"torchvision_v2_pipeline.py", "kornia_pipeline.py", "albumentations_pipeline.py", "lightly_pipeline.py",
            "plain_loop_in_step_scoring.py", "lightning_on_after_batch_transfer.py"}


def _missing_modules(path: Path) -> list[str]:
    """Top-level third-party modules the example imports that are not installed."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return sorted(n for n in names if importlib.util.find_spec(n) is None)


def test_every_ecosystem_has_an_example():
    present = {p.name for p in EXAMPLES.glob("*.py")}
    assert REQUIRED <= present, f"missing examples: {sorted(REQUIRED - present)}"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.py")), ids=lambda p: p.stem)
def test_example_runs(path, tmp_path):
    missing = _missing_modules(path)
    if missing:
        pytest.skip(f"{path.name} needs {', '.join(missing)} (pip install 'mi_augment[test]')")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    result = subprocess.run([sys.executable, str(path)], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, f"{path.name} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    assert result.stdout.strip(), f"{path.name} printed nothing"
