"""The adversarial VAE method and precomputed embeddings as a data source, end to end (issue 13).

Embeddings files are written here with h5py from NumPy draws whose structure is planted by hand
(the attribute in known dimensions), or by an earlier `dne run` with output.save_embeddings; every
result is read back with h5py, and the report's independent NumPy recomputation of the metrics is
run over the result folders."""
import subprocess
import sys

import h5py
import numpy as np
import pytest

from dne_testing import REPO, SMALL, run_dne

QUICKSTART = REPO / "experiments" / "quickstart.toml"
REPORT = REPO / "analysis" / "report.py"


def planted_file(path, n_train=300, n_test=200, d=12, with_age=False, seed=0):
    """x = 2 * sa in dimension 0, 1.5 * label in dimension 1, age / 10 in dimension 2 (when
    asked), unit Gaussian noise everywhere; sa and label independent fair coins."""
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        for split, n in (("train", n_train), ("test", n_test)):
            sa = rng.integers(0, 2, n)
            label = rng.integers(0, 2, n)
            age = rng.uniform(20, 80, n)
            x = rng.standard_normal((n, d))
            x[:, 0] += 2.0 * sa
            x[:, 1] += 1.5 * label
            if with_age:
                x[:, 2] += age / 10.0
                f[f"{split}/age"] = age.astype(np.float32)
            f[f"{split}/x"] = x.astype(np.float32)
            f[f"{split}/label"] = label.astype(np.int32)
            f[f"{split}/sa"] = sa.astype(np.int32)
    return path


def write_config(path, embeddings, out, methods='["none", "vae"]', seeds="[0]", extra=""):
    path.write_text(f'[data]\nsource = "embeddings"\nembeddings = "{embeddings}"\n'
                    f'[dne]\nmethod = {methods}\n[vae]\nepochs = 8\nlatent = 4\nhidden = "32"\n{extra}'
                    f'[sweep]\nseeds = {seeds}\n[output]\ndir = "{out}"\n')
    return path


def results(out):
    """method, seed -> (metrics, control metrics) of every experiment file of a run folder."""
    found = {}
    for p in sorted((out / "experiments").glob("*.h5")):
        with h5py.File(p, "r") as f:
            control = dict(f["control/metrics"].attrs) if "control" in f else {}
            found[(f.attrs["method"], int(f.attrs["seed"]))] = (dict(f["metrics"].attrs), control)
    return found


def report_ok(out):
    """The report's independent recomputation of every stored metric (exit 3 on a mismatch)."""
    rc = subprocess.run([sys.executable, str(REPORT), str(out), "--out", str(out / "report")],
                        capture_output=True, text=True, timeout=300)
    assert rc.returncode == 0, rc.stdout + rc.stderr


def test_saved_embeddings_are_the_next_runs_input_and_erm_agrees(dne_bin, tmp_path):
    """ERM on a phantom's images and ERM on the embeddings that run saved fit the same probes on
    the same numbers: the same scores, bit for bit."""
    first = tmp_path / "images"
    r = run_dne(dne_bin, "run", "--config", QUICKSTART, "--out", first, *SMALL, "--set", "dne.method=none",
                "--set", "sweep.seeds=0", "--set", "output.save_embeddings=true")
    assert r.returncode == 0, r.stderr
    [saved] = list((first / "experiments").glob("*.h5"))
    with h5py.File(saved, "r") as f:
        x = f["embeddings/train/x"][()]
        assert x.shape == (200, 32) and x.dtype == np.float32
        assert f["embeddings/test/x"].shape == (200, 32)
        assert "val" not in f["embeddings"]
        # the rows' labels as trained on: the phantom's biased train split (P(sa=1 | y=1) = 0.9)
        label, sa = f["embeddings/train/label"][()], f["embeddings/train/sa"][()]
        assert 0.8 < sa[label == 1].mean() and sa[label == 0].mean() < 0.2
        assert np.array_equal(f["embeddings/test/label"][()], f["test/label"][()])
        images_score = f["test/score"][()]
    second = tmp_path / "embeddings"
    cfg = write_config(tmp_path / "e.toml", saved, second, methods='"none"')
    r = run_dne(dne_bin, "run", "--config", cfg)
    assert r.returncode == 0, r.stderr
    [again] = list((second / "experiments").glob("*.h5"))
    with h5py.File(again, "r") as f:
        assert np.array_equal(f["test/score"][()], images_score)
        assert f["provenance"].attrs["data_embeddings"] == str(saved)
        assert f["provenance"].attrs["fm"].startswith("none")
        assert "examples" not in f and "noise" not in f
    report_ok(second)


def test_vae_writes_method_control_trace_and_attacks(dne_bin, tmp_path):
    data = planted_file(tmp_path / "planted.h5", with_age=True)
    out = tmp_path / "run"
    r = run_dne(dne_bin, "run", "--config", write_config(tmp_path / "c.toml", data, out))
    assert r.returncode == 0, r.stderr
    with h5py.File(out / "index.h5", "r") as idx:
        names = [n.decode() for n in idx["methods/name"][()]]
        kinds = dict(zip(names, (k.decode() for k in idx["methods/kind"][()])))
        assert kinds["vae"] == "embedding"
    [vae_file] = [p for p in (out / "experiments").glob("*.h5") if h5py.File(p, "r").attrs["method"] == "vae"]
    with h5py.File(vae_file, "r") as f:
        assert f.attrs["status"] == "complete"  # docs/results-format.md: "complete" or the stop reason
        m = dict(f["metrics"].attrs)
        for name in ("accuracy", "auc", "eo_p", "sa_leakage_auc", "age_leakage_r2", "reconstruction_error"):
            assert np.isfinite(m[name]), name
        assert "frozen_sa_accuracy" not in m  # the latent space is not the frozen probe's
        assert f["control"].attrs["kind"] == "vae without the adversary"
        assert "reconstruction_error" in f["control/metrics"].attrs
        assert list(f["trace/epochs"][()]) == list(range(1, 9))
        for column in ("loss", "reconstruction", "kl", "adversarial_term", "adversary_loss_sex", "adversary_loss_age",
                       "sa_accuracy"):
            assert f[f"trace/{column}"].shape == (8,), column
        assert "noise" not in f
        assert f["test/age"].shape == (200,)
    erm = results(out)[("none", 0)][0]
    # age ~ U(20, 80) is planted as age / 10 beside unit noise in dimension 2: var(age / 10) = 36 / 12
    # = 3, so the best linear attack has R^2 = 3 / (3 + 1) = 0.75 (a little less out of sample)
    assert 0.6 < erm["age_leakage_r2"] < 0.8, erm["age_leakage_r2"]
    report_ok(out)


def test_results_do_not_depend_on_the_number_of_ranks(dne_bin, tmp_path):
    data = planted_file(tmp_path / "planted.h5")
    one, two = tmp_path / "one", tmp_path / "two"
    for out, ranks in ((one, None), (two, 2)):
        r = run_dne(dne_bin, "run", "--config", write_config(tmp_path / f"{out.name}.toml", data, out, seeds="[0, 1]"),
                    mpi_ranks=ranks)
        assert r.returncode == 0, r.stderr
    a, b = results(one), results(two)
    assert sorted(a) == [("none", 0), ("none", 1), ("vae", 0), ("vae", 1)]
    assert a == b  # every metric and control metric, exactly


def test_a_changed_embeddings_file_is_a_new_experiment(dne_bin, tmp_path):
    data = planted_file(tmp_path / "planted.h5")
    out = tmp_path / "run"
    cfg = write_config(tmp_path / "c.toml", data, out, methods='"none"')
    assert run_dne(dne_bin, "run", "--config", cfg).returncode == 0
    assert "1 already complete, 0 run now" in run_dne(dne_bin, "run", "--config", cfg).stdout
    with h5py.File(data, "r+") as f:
        f["train/x"][0, 0] += 1.0
    r = run_dne(dne_bin, "run", "--config", cfg)
    assert "0 already complete, 1 run now" in r.stdout, r.stdout


@pytest.mark.parametrize("ranks", [None, 2])
def test_a_malformed_embeddings_file_is_one_line_on_every_rank(dne_bin, tmp_path, ranks):
    data = planted_file(tmp_path / "bad.h5")
    with h5py.File(data, "r+") as f:
        del f["test/sa"]
    out = tmp_path / "run"
    r = run_dne(dne_bin, "run", "--config", write_config(tmp_path / "c.toml", data, out), mpi_ranks=ranks)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith("dne:")]
    assert lines and set(lines) == {f"dne: data error: {data}: /test/sa is missing; expected train/x (N, D), "
                                    "train/label, train/sa [, train/age] and the same under test/ (docs/datasets.md)"}, r.stderr
    assert not (out / "experiments").exists() or not list((out / "experiments").glob("*.h5"))
    assert not (out / "index.h5").exists()


def test_methods_that_need_images_are_refused_on_embeddings(dne_bin, tmp_path):
    data = planted_file(tmp_path / "planted.h5")
    r = run_dne(dne_bin, "run", "--config", write_config(tmp_path / "c.toml", data, tmp_path / "run", methods='"gezo"'))
    assert r.returncode == 2
    assert 'dne.method = "gezo" adds a noise to images, and data.source = "embeddings" has none' in r.stderr
