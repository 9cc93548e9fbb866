import os
from pathlib import Path

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


@pytest.fixture(autouse=True)
def _isolated_language_table():
    """Tests that register languages must not leak them into other tests."""
    from linguamix import languages

    saved = dict(languages._TABLE)
    yield
    languages._TABLE.clear()
    languages._TABLE.update(saved)
