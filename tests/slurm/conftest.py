"""Makes tests/pylib importable and provides its `dne_bin` fixture (the Slurm suite)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pylib"))
from dne_testing import dne_bin  # noqa: E402,F401  (fixture)
