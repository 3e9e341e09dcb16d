"""Issue 21 item 3: estimation lives in perturbations/fitting/, the only importer of video code or OpenCV
among the models, so importing the transforms stays light."""

import ast
import subprocess
import sys
from pathlib import Path

import mi_augment.perturbations as perturbations

PACKAGE = Path(perturbations.__file__).parent


def _imports(tree: ast.AST, top_level_only: bool) -> set[str]:
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
    return names


def _is_video_or_cv2(name: str) -> bool:
    stripped = name.lstrip(".")
    return stripped == "cv2" or stripped.startswith(("video", "mi_augment.video", "cv2."))


def test_importing_the_transforms_loads_neither_video_code_nor_opencv():
    code = ("import sys, mi_augment.transforms; "
            "bad = [m for m in sys.modules if m.startswith(('mi_augment.video', 'cv2'))]; print(bad); "
            "assert not bad")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_only_the_fitting_package_imports_video_code_and_opencv_only_inside_functions():
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        inside_fitting = "fitting" in path.relative_to(PACKAGE).parts
        if not inside_fitting:
            assert not {n for n in _imports(tree, False) if _is_video_or_cv2(n)}, path
        assert "cv2" not in _imports(tree, True), f"{path} imports cv2 at module level"


def test_the_models_fit_through_the_fitting_package():
    from mi_augment.perturbations import fitting

    assert callable(fitting.estimate_motion) and callable(fitting.fit_illumination)
    assert fitting.minimum_observations(9) == 10
