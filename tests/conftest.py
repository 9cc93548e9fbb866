import os
from pathlib import Path

# Tiny models: one thread is fastest, and it keeps timings sane when other processes share the cores
# (OpenMP spin-waiting on an oversubscribed machine slows a 2-thread backward pass down ~100x).
# Subprocesses started by the tests inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LINGUAMIX_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real benchmark files (MGSM, API-Bank, mCoT) that sit beside the repository."""
    if not SHARED_DATA.exists():
        pytest.skip(f"real data files not found at {SHARED_DATA} (set LINGUAMIX_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO
