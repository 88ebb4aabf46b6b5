"""Shared helpers of the e2e and MPI test suites: where the dne binary is, how to run it."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# A small, fast experiment: one DNE epoch, a tiny random ViT (16 patches of 16x16, width 32, one
# block), so that tests need no pretrained FM file; SMALL adds 200 + 200 phantom images.
SMALL_MODEL = ["--set", "dne.epochs=1",
               "--set", "dne.batch_size=50", "--set", "fm.kind=vit", "--set", "fm.weights=\"\"",
               "--set", "fm.patch_size=16", "--set", "fm.embed_dim=32", "--set", "fm.depth=1", "--set", "fm.heads=2",
               "--set", "dne.adversary=frozen"]  # one adversary: the quickstart sweeps frozen and refit
SMALL = ["--set", "data.n_train=200", "--set", "data.n_test=200", *SMALL_MODEL]
# The template for real data (no phantom keys): tests point data.manifest at their own CSV.
MANIFEST_CONFIG = REPO / "experiments" / "manifest.toml"
MANIFEST_SMALL = [*SMALL_MODEL, "--set", "sweep.seeds=0", "--set", "dne.method=none", "--set", "fm.mean=\"0.5\"",
                  "--set", "fm.std=\"0.25\"", "--set", "data.resize=stretch", "--set", "run.threads=1"]


@pytest.fixture(scope="session")
def dne_bin():
    path = os.environ.get("DNE_BIN", str(REPO / "build" / "dne"))
    if not Path(path).is_file():
        pytest.fail(f"dne binary not found at {path}: build first or set DNE_BIN")
    return path


def run_dne(dne_bin, *args, mpi_ranks=None, timeout=600):
    """Run `dne ARGS` (optionally under mpirun); returns CompletedProcess with text output."""
    cmd = [dne_bin, *map(str, args)]
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1")
    if mpi_ranks is not None:
        cmd = ["mpirun", "-n", str(mpi_ranks), "--oversubscribe", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def phantom_dir(dne_bin, tmp_path_factory):
    """A small phantom data set on disk (120 train + 80 test PNGs and manifest.csv), one per module."""
    out = tmp_path_factory.mktemp("phantom")
    proc = run_dne(dne_bin, "phantom", "--out", out, "--set", "data.n_train=120", "--set", "data.n_test=80")
    assert proc.returncode == 0, proc.stderr
    return out
