"""Makes tests/pylib importable and provides its `dne_bin` fixture."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pylib"))
import pytest  # noqa: E402

from dne_testing import dne_bin, run_dne  # noqa: E402,F401  (fixture)


@pytest.fixture(scope="module")
def phantom_dir(dne_bin, tmp_path_factory):
    """A small phantom data set on disk (120 train + 80 test PNGs and manifest.csv), one per module."""
    out = tmp_path_factory.mktemp("phantom")
    proc = run_dne(dne_bin, "phantom", "--out", out, "--set", "data.n_train=120", "--set", "data.n_test=80")
    assert proc.returncode == 0, proc.stderr
    return out
