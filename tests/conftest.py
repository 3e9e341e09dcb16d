import pytest
import torch


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _few_threads():
    # Tests run on 2-core CI machines; keep torch from oversubscribing.
    torch.set_num_threads(2)
    yield


# The all-pairs MI runs hundreds of small kernels: on a shared 2-core machine a second intra-op thread mostly
# waits (benchmarks/twin_mi.py measured 0.3 s with 1 thread vs 2.5 s with 2 for 256 patches). Test modules
# that mine twins opt in with ``pytestmark = pytest.mark.usefixtures("one_thread_module", "one_thread")``.
@pytest.fixture(scope="module")
def one_thread_module():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def one_thread(_few_threads):
    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="session")
def load_script():
    """Load a repository script (``benchmarks/*.py``, ``recipes/*.py``: not a package) by its path relative to
    the repository root, once per session, with the loader the benchmark scripts use."""
    from benchmarks._common import load_script

    return load_script
