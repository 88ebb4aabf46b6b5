"""The noise budget and the norm-matched random control of every noise experiment, end to end.

A white-box experiment and ERM under `dne.max_linf`: the learned noise and the control noise
stay inside the budget, the control noise has the learned noise's L2 norm, /control/metrics holds
the same metrics as /metrics and agrees with an independent recomputation from
/control/test/score (analysis/dne_metrics.py), index.h5 carries control_<metric> columns
(NaN for ERM, which has no control), the noise energy by phantom region matches a NumPy
recomputation from /noise and /regions, and a rerun resumes with the control columns filled.
"""
import h5py
import numpy as np

from analysis import dne_metrics
from analysis.check_metrics import compare_metrics
from dne_testing import REPO, SMALL, run_dne

QUICKSTART = REPO / "experiments" / "quickstart.toml"
BUDGET = 0.03
ARGS = [*SMALL, "--set", "dne.method=[\"none\", \"whitebox\"]", "--set", "dne.lambda=0.01", "--set", "dne.lr=0.05",
        "--set", f"dne.max_linf={BUDGET}", "--set", "dne.clip_images=true", "--set", "sweep.seeds=2", "--quiet"]


def test_budget_and_control_end_to_end(dne_bin, tmp_path):
    proc = run_dne(dne_bin, "run", "--config", QUICKSTART, "--out", tmp_path, *ARGS)
    assert proc.returncode == 0, proc.stderr
    files = {}
    for path in (tmp_path / "experiments").glob("*.h5"):
        with h5py.File(path, "r") as f:
            files[f.attrs["method"]] = path
    assert sorted(files) == ["none", "whitebox"]
    with h5py.File(files["whitebox"], "r") as f:
        noise, control = f["noise"][()], f["control/noise"][()]
        assert np.abs(noise).max() <= BUDGET + 1e-7
        assert np.abs(noise).max() > 0.5 * BUDGET  # lr 0.05: the budget binds
        assert np.abs(control).max() <= BUDGET + 1e-7
        assert abs(np.linalg.norm(control) - np.linalg.norm(noise)) < 1e-4 * np.linalg.norm(noise)
        assert not np.allclose(control, noise)
        stored = {k: float(v) for k, v in f["control/metrics"].attrs.items()}
        assert set(stored) == set(f["metrics"].attrs)
        recomputed = dne_metrics.classification_metrics(f["control/test/score"][()], f["test/label"][()],
                                                        f["test/sa"][()])
        problems, agree = compare_metrics(recomputed, stored, "control", 1e-6)
        assert problems == [] and agree >= 10, problems
        assert abs(stored["noise_l2"] - np.linalg.norm(control)) < 1e-5
        # Where the noise goes, recomputed here from the stored noises and region masks.
        sa_region, disease = f["regions/sa"][()].astype(bool), f["regions/disease"][()].astype(bool)
        assert 0 < sa_region.mean() < 0.5 and 0 < disease.mean() < 0.5
        for group, eps in (("metrics", noise), ("control/metrics", control)):
            energy = eps.astype(np.float64) ** 2
            expected = {"noise_energy_sa_region": energy[sa_region].sum() / energy.sum(),
                        "noise_energy_disease_region": energy[disease].sum() / energy.sum(),
                        "noise_energy_elsewhere": energy[~sa_region & ~disease].sum() / energy.sum(),
                        "region_area_sa": sa_region.mean(), "region_area_disease": disease.mean()}
            for name, value in expected.items():
                assert abs(f[group].attrs[name] - value) < 1e-9, (group, name)
    with h5py.File(files["none"], "r") as f:
        assert "control" not in f
    with h5py.File(tmp_path / "index.h5", "r") as f:
        methods = list(f["experiments/method"].asstr()[:])
        column = f["experiments/metrics/control_accuracy"][()]
        assert np.isfinite(column[methods.index("whitebox")]) and np.isnan(column[methods.index("none")])
    # A rerun resumes both, and the resumed index rows still carry the control metrics.
    again = run_dne(dne_bin, "run", "--config", QUICKSTART, "--out", tmp_path, *ARGS)
    assert again.returncode == 0 and "2 already complete" in again.stdout
    with h5py.File(tmp_path / "index.h5", "r") as f:
        methods = list(f["experiments/method"].asstr()[:])
        assert np.isfinite(f["experiments/metrics/control_eo_p"][()][methods.index("whitebox")])
