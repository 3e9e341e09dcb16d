"""What the PyPI package ships (issue 24 item 21): the typing marker, the licence, and a README whose images
show on PyPI (absolute links, since PyPI renders the README without the repository's files)."""

import re
from pathlib import Path

import pytest

import mi_augment

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
RAW = "https://raw.githubusercontent.com/mi-augment/mi_augment/main/"


def test_package_is_marked_typed_and_ships_the_marker():
    assert (Path(mi_augment.__file__).parent / "py.typed").is_file()
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "py.typed" in config["tool"]["setuptools"]["package-data"]["mi_augment"]


def test_license_file_is_mit_and_matches_the_metadata():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "mi_augment authors" in text
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"] == {"text": "MIT"}


def test_readme_images_are_absolute_links_to_files_in_the_repository():
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)\s]+)", readme) + re.findall(r"<img[^>]*\bsrc=\"([^\"]+)\"", readme)
    assert links, "the README shows no image"
    for link in links:
        assert link.startswith(RAW), link
        assert (ROOT / link[len(RAW):]).is_file(), f"{link} names no file of the repository"
