"""A small sweep on the GPU against the same sweep on the CPU (issue 11; ctest label gpu).

Skips, saying why, where no CUDA device is visible to a CUDA LibTorch (`dne run --dry-run --set
run.device=cuda` is refused). On a GPU: ERM and the norm-matched random control with the ViT
(fp32 forwards on the GPU; downstream probes on the CPU) must give the CPU's metrics within 0.02 and its
embeddings within 1e-3 (float32 GEMMs in another order: a tolerance, not bits); a GeZO
experiment must complete with finite metrics under fp32, tf32 and bf16, and repeat bit for bit
at fp32; white-box DNE (noise, probe and Adam on the GPU) must follow the CPU's noise within 5%
of its norm; under mpirun -n 2 with
groups of 2 the rank-group sums must go through NCCL; and the run must record its device."""
import h5py
import numpy as np
import pytest

from dne_testing import SMALL, run_dne


def config(path, out, method, extra=""):
    path.write_text(f'[dne]\nmethod = "{method}"\n[sweep]\nseeds = [0]\n{extra}[output]\ndir = "{out}"\n'
                    'save_embeddings = true\n')
    return path


@pytest.fixture(scope="module")
def gpu(dne_bin, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("probe")
    probe = run_dne(dne_bin, "run", "--config", config(tmp / "p.toml", tmp / "out", "none"), "--dry-run",
                    "--set", "run.device=cuda", *SMALL)
    if probe.returncode != 0:
        pytest.skip("no GPU for this build: " + probe.stderr.strip())
    return True


def only_file(out):
    [path] = (out / "experiments").glob("*.h5")
    return path


@pytest.mark.parametrize("method", ["none", "random"])
def test_gpu_metrics_match_the_cpu_within_tolerance(dne_bin, gpu, tmp_path, method):
    results = {}
    for device in ("cpu", "cuda"):
        out = tmp_path / device
        proc = run_dne(dne_bin, "run", "--config", config(tmp_path / f"{device}.toml", out, method),
                       "--set", f"run.device={device}", *SMALL)
        assert proc.returncode == 0, proc.stderr
        with h5py.File(only_file(out), "r") as f:
            results[device] = (dict(f["metrics"].attrs), f["embeddings/test/x"][...], f["provenance"].attrs["device"])
    cpu, cuda = results["cpu"], results["cuda"]
    assert cuda[2].startswith("cuda:") and cpu[2] == "cpu"
    np.testing.assert_allclose(cuda[1], cpu[1], atol=1e-3)
    for name in ("accuracy", "auc", "sa_leakage_auc", "eo_p"):
        assert abs(cuda[0][name] - cpu[0][name]) <= 0.02, (name, cpu[0][name], cuda[0][name])


@pytest.mark.parametrize("precision", ["fp32", "tf32", "bf16"])
def test_gezo_completes_on_the_gpu_at_every_precision(dne_bin, gpu, tmp_path, precision):
    out = tmp_path / "out"
    proc = run_dne(dne_bin, "run", "--config", config(tmp_path / "g.toml", out, "gezo"), "--set", "run.device=cuda",
                   "--set", f"run.precision={precision}", *SMALL)
    assert proc.returncode == 0, proc.stderr
    with h5py.File(only_file(out), "r") as f:
        assert f["provenance"].attrs["precision"] == precision
        assert all(np.isfinite(v) for v in f["metrics"].attrs.values())


def noise_of(dne_bin, tmp_path, name, method, device, extra=()):
    out = tmp_path / name
    proc = run_dne(dne_bin, "run", "--config", config(tmp_path / f"{name}.toml", out, method),
                   "--set", f"run.device={device}", *SMALL, *extra)  # extra last: it overrides SMALL
    assert proc.returncode == 0, proc.stderr
    with h5py.File(only_file(out), "r") as f:
        return f["noise"][...], dict(f["metrics"].attrs)


def test_zeroth_order_editing_on_the_gpu_is_bitwise_repeatable(dne_bin, gpu, tmp_path):
    # GeZO on the device (noise, probe, loss slots there) twice: forwards, reductions and the
    # greedy decisions are deterministic on one GPU, so the same config gives the same bits.
    first, _ = noise_of(dne_bin, tmp_path, "a", "gezo", "cuda")
    second, _ = noise_of(dne_bin, tmp_path, "b", "gezo", "cuda")
    assert np.array_equal(first, second)
    assert np.linalg.norm(first) > 0


REFIT_BUDGET = ("--set", "dne.adversary=refit", "--set", "dne.refit_every=2", "--set", "dne.max_l2=2.0")


@pytest.mark.parametrize("method, extra", [("gezo", REFIT_BUDGET),
                                           ("rge", (*REFIT_BUDGET, "--set", "comm.mode=dense")),
                                           ("whitebox", REFIT_BUDGET)])
def test_refits_budget_and_dense_estimates_on_the_gpu_follow_the_cpu(dne_bin, gpu, tmp_path, method, extra):
    # The device paths SMALL leaves out: the adversary re-fitted on the GPU (L-BFGS there, the
    # training set embedded and summed on the device), the L2 projection without a host read,
    # and dense RGE's device gradient sum. Same budget and finite metrics everywhere; GeZO and
    # RGE may take other greedy or Adam paths from float32 differences, so their metrics are
    # compared loosely.
    cpu, cpu_metrics = noise_of(dne_bin, tmp_path, "cpu", method, "cpu", extra)
    cuda, cuda_metrics = noise_of(dne_bin, tmp_path, "cuda", method, "cuda", extra)
    assert np.linalg.norm(cuda) <= 2.0 * (1 + 1e-5) and np.linalg.norm(cpu) <= 2.0 * (1 + 1e-5)
    assert all(np.isfinite(v) for v in cuda_metrics.values())
    for name in ("accuracy", "auc"):
        assert abs(cuda_metrics[name] - cpu_metrics[name]) <= 0.1, (name, cpu_metrics[name], cuda_metrics[name])


def test_whitebox_editing_on_the_gpu_follows_the_cpu_within_tolerance(dne_bin, gpu, tmp_path):
    # White-box DNE with the noise, probe and Adam on the GPU against the CPU: float32 in another
    # order (and cuDNN's backward) makes it a tolerance, not bits.
    cpu, cpu_metrics = noise_of(dne_bin, tmp_path, "cpu", "whitebox", "cpu")
    cuda, cuda_metrics = noise_of(dne_bin, tmp_path, "cuda", "whitebox", "cuda")
    assert np.linalg.norm(cuda - cpu) <= 0.05 * np.linalg.norm(cpu), (np.linalg.norm(cuda - cpu), np.linalg.norm(cpu))
    for name in ("accuracy", "auc", "sa_leakage_auc"):
        assert abs(cuda_metrics[name] - cpu_metrics[name]) <= 0.05, (name, cpu_metrics[name], cuda_metrics[name])


def test_dne_run_builds_the_nccl_communicator_on_gpus(dne_bin, gpu, tmp_path):
    out = tmp_path / "out"
    # comm.backend named: with auto, two ranks on one GPU take MPI, the run succeeds, and the
    # skip below never fires (issue 26).
    proc = run_dne(dne_bin, "run", "--config", config(tmp_path / "n.toml", out, "gezo"), "--set", "run.device=cuda",
                   "--set", "comm.backend=nccl", "--set", "sweep.ranks_per_experiment=2", *SMALL, mpi_ranks=2)
    if proc.returncode != 0 and "share a node with 1 visible CUDA device" in proc.stderr:
        pytest.skip("one GPU: NCCL needs a device per rank of the group")
    assert proc.returncode == 0, proc.stderr
    assert "rank-group sums: nccl" in proc.stdout
    with h5py.File(only_file(out), "r") as f:
        assert f["provenance"].attrs["communicator"] == "nccl"
