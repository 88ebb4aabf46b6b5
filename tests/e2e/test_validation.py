"""The validation split end to end: data.val_fraction, probes.l2_choices and dne.keep = "best_val".

What is chosen (the disease probe's L2, the noise checkpoint) must be chosen on validation and
never on test: the choices and the validation numbers they were made from are identical when only
the test split changes, and each choice is the arg-best of the numbers stored beside it.
"""
import h5py
import numpy as np

from dne_testing import REPO, SMALL, run_dne

QUICKSTART = REPO / "experiments" / "quickstart.toml"
CHOICES = [0.001, 1.0, 1000.0]
ARGS = [*SMALL, "--set", "dne.method=whitebox", "--set", "dne.lambda=0.001", "--set", "dne.epochs=3", "--set", "dne.lr=0.02",
        "--set", "dne.max_linf=0.1", "--set", "data.val_fraction=0.2", "--set", "dne.keep=best_val",
        "--set", "probes.l2_choices=\"" + ",".join(map(str, CHOICES)) + "\"", "--set", "sweep.seeds=4", "--quiet"]


def run(dne_bin, out, *extra):
    proc = run_dne(dne_bin, "run", "--config", QUICKSTART, "--out", out, *ARGS, *extra)
    assert proc.returncode == 0, proc.stderr
    (path,) = (out / "experiments").glob("*.h5")
    with h5py.File(path, "r") as f:
        sel = f["selection"]
        return {"attrs": {k: sel.attrs[k] for k in sel.attrs}, "val_auc": sel["val_auc"][()],
                "val_loss": sel["val_loss"][()], "noise": f["noise"][()], "config": f.attrs["config"]}


def test_choices_are_made_on_validation_only(dne_bin, tmp_path):
    a = run(dne_bin, tmp_path / "a")
    attrs = a["attrs"]
    # 200 training images, 20% of every (sa, label) cell: about 40 held out
    assert 35 <= attrs["val_size"] <= 45
    assert len(a["val_auc"]) == len(CHOICES) and np.all((a["val_auc"] >= 0) & (a["val_auc"] <= 1))
    assert attrs["disease_probe_l2"] == CHOICES[int(np.argmax(a["val_auc"]))]
    assert "control_disease_probe_l2" in attrs
    assert len(a["val_loss"]) == 3  # one checkpoint per epoch
    assert attrs["noise_checkpoint"] == int(np.argmin(a["val_loss"]))
    # The same experiment with a different test split: every choice and its evidence are the same.
    b = run(dne_bin, tmp_path / "b", "--set", "data.n_test=120")
    assert b["attrs"] == attrs
    assert np.array_equal(b["val_auc"], a["val_auc"]) and np.array_equal(b["val_loss"], a["val_loss"])
    assert np.array_equal(b["noise"], a["noise"])


def test_choices_need_a_validation_split(dne_bin, tmp_path):
    for key, value in (("dne.keep", "best_val"), ("probes.l2_choices", "\"0.1,1\"")):
        proc = run_dne(dne_bin, "run", "--config", QUICKSTART, "--out", tmp_path, *SMALL,
                       "--set", "dne.method=whitebox", "--set", f"{key}={value}")
        assert proc.returncode == 2
        lines = [l for l in proc.stderr.splitlines() if l.startswith("dne:")]
        assert len(lines) == 1 and key in lines[0] and "data.val_fraction" in lines[0], proc.stderr
    proc = run_dne(dne_bin, "run", "--config", QUICKSTART, "--out", tmp_path, *SMALL,
                   "--set", "data.val_fraction=0.2", "--set", "probes.l2_choices=\"0.1,x\"")
    assert proc.returncode == 2 and "probes.l2_choices" in proc.stderr and "not a comma-separated list" in proc.stderr
