"""Configs that bend as users expect (issue 29): the keys of one FM kind or data source collapse
when another is chosen (said once), the kind can be an axis, `dne pretrain` ignores the keys it
does not read, and a string key holding numbers takes a number. Through the real CLI."""
import re

import h5py

from dne_testing import REPO, run_dne

QUICKSTART = REPO / "experiments" / "quickstart.toml"

VIT = '[fm]\nkind = "vit"\nweights = "missing.h5"\npatch_size = 16\nmean = "0.4"\n'


def dry_run_ids(dne_bin, config, *args):
    proc = run_dne(dne_bin, "run", "--config", config, "--dry-run", *args)
    assert proc.returncode == 0, proc.stderr
    return re.findall(r"^([0-9a-f]{16}) ", proc.stdout, re.M), proc.stdout


def test_one_override_switches_a_vit_config_to_the_cnn(dne_bin, tmp_path):
    vit = tmp_path / "vit.toml"
    vit.write_text(VIT + f'[output]\ndir = "{tmp_path / "out"}"\n')
    cnn = tmp_path / "cnn.toml"
    cnn.write_text(f'[output]\ndir = "{tmp_path / "out"}"\n')
    switched, log = dry_run_ids(dne_bin, vit, "--set", "fm.kind=cnn")
    plain, _ = dry_run_ids(dne_bin, cnn)
    assert switched == plain  # the ViT's keys are dropped: the same experiment as a plain CNN config
    ignored = [line for line in log.splitlines() if line.startswith("# ignored: ")]
    assert ignored == ["# ignored: fm.weights (read only when fm.kind = vit): no experiment reads it",
                       "# ignored: fm.patch_size (read only when fm.kind = vit): no experiment reads it",
                       "# ignored: fm.mean (read only when fm.kind = vit): no experiment reads it"], log


# A small run of the quickstart config: 200 + 200 phantom images, one epoch, one seed.
TINY = ["--set", "data.n_train=200", "--set", "data.n_test=200", "--set", "dne.epochs=1",
        "--set", "dne.adversary=frozen", "--set", "sweep.seeds=0", "--set", "run.threads=1"]


def test_the_quickstart_config_runs_with_the_cnn(dne_bin, tmp_path):
    proc = run_dne(dne_bin, "run", "--config", QUICKSTART, "--out", tmp_path / "out", *TINY, "--set", "fm.kind=cnn")
    assert proc.returncode == 0, proc.stderr
    assert "2/2 complete" in proc.stdout  # ERM and white-box DNE, on the CNN
    assert "# ignored: fm.weights (read only when fm.kind = vit): no experiment reads it" in proc.stdout
    for path in (tmp_path / "out" / "experiments").glob("*.h5"):
        with h5py.File(path, "r") as f:
            assert f["provenance"].attrs["fm"].startswith("cnn"), f["provenance"].attrs["fm"]


def test_the_kind_as_an_axis_runs_both(dne_bin, tmp_path):
    proc = run_dne(dne_bin, "run", "--config", QUICKSTART, "--out", tmp_path / "out", *TINY,
                   "--set", "dne.method=none", "--set", 'fm.kind=["vit", "cnn"]', "--set", 'fm.weights=""',
                   "--set", "fm.embed_dim=32", "--set", "fm.depth=1", "--set", "fm.heads=2")
    assert proc.returncode == 0, proc.stderr
    assert "2/2 complete" in proc.stdout
    kinds = set()
    for path in (tmp_path / "out" / "experiments").glob("*.h5"):
        with h5py.File(path, "r") as f:
            kinds.add(f["provenance"].attrs["fm"].split()[0].split("(")[0])
    assert kinds == {"vit", "cnn"}, kinds


def test_the_kind_is_an_axis_and_each_experiment_keeps_its_own_keys(dne_bin, tmp_path):
    both = tmp_path / "both.toml"
    both.write_text('[fm]\nkind = ["cnn", "vit"]\nweights = ""\npatch_size = 16\nwidth = 16\n'
                    f'[output]\ndir = "{tmp_path / "out"}"\n')
    ids, log = dry_run_ids(dne_bin, both)
    assert len(ids) == 2 and "# ignored" not in log, log
    cnn, _ = dry_run_ids(dne_bin, both, "--set", "fm.kind=cnn")
    vit, _ = dry_run_ids(dne_bin, both, "--set", "fm.kind=vit")
    assert ids == cnn + vit


def test_a_phantom_config_becomes_a_manifest_one_by_overrides(dne_bin, tmp_path, phantom_dir):
    cfg = tmp_path / "p.toml"
    cfg.write_text(f'[data]\nbias = 0.8\nn_train = 300\n[output]\ndir = "{tmp_path / "out"}"\n')
    ids, log = dry_run_ids(dne_bin, cfg, "--set", "data.source=manifest",
                           "--set", f'data.manifest="{phantom_dir / "manifest.csv"}"')
    assert len(ids) == 1
    assert "# ignored: data.n_train (read only when data.source = phantom)" in log
    assert "# ignored: data.bias (read only when data.source = phantom)" in log


def test_pretrain_ignores_the_sweep_keys_it_does_not_read(dne_bin, tmp_path):
    cfg = tmp_path / "sweep.toml"
    cfg.write_text('[dne]\nmethod = ["none", "whitebox"]\nadversary = ["frozen", "refit"]\n'
                   '[fm]\nkind = "vit"\nembed_dim = 32\ndepth = 1\nheads = 2\n[data]\nn_train = 64\nn_test = 64\n'
                   f'[pretrain]\nsteps = 2\nbatch_size = 16\n[output]\ndir = "{tmp_path / "out"}"\n')
    proc = run_dne(dne_bin, "pretrain", "--config", cfg, "--out", tmp_path / "fm.h5", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "fm.h5").is_file()


def test_number_for_a_string_key_that_holds_numbers(dne_bin, tmp_path):
    cfg = tmp_path / "n.toml"
    cfg.write_text(f'[fm]\nkind = "vit"\nmean = 0.5\n[output]\ndir = "{tmp_path / "out"}"\n')
    with_number, _ = dry_run_ids(dne_bin, cfg, "--set", "fm.std=0.25")
    quoted = tmp_path / "q.toml"
    quoted.write_text(f'[fm]\nkind = "vit"\nmean = "0.5"\nstd = "0.25"\n[output]\ndir = "{tmp_path / "out"}"\n')
    with_text, _ = dry_run_ids(dne_bin, quoted)
    assert with_number == with_text
    help_text = run_dne(dne_bin, "run", "--help-config").stdout
    assert "range [1, 16]" in help_text and "range [1.0, 16.0]" not in help_text


def test_former_gezo_names_of_the_zo_keys_keep_the_ids_with_one_note_each(dne_bin, tmp_path):
    """The keys every zeroth-order editor reads moved from [gezo] to [zo] (issue 30): a config with
    the former names runs the same experiments (same ids) and says one line per former name."""
    old = tmp_path / "old.toml"
    old.write_text('[dne]\nmethod = ["gezo", "spsa"]\n[gezo]\ncandidates = 3\nsigma = 0.02\nlocal_epochs = 1\n'
                   f'[output]\ndir = "{tmp_path / "out"}"\n')
    new = tmp_path / "new.toml"
    new.write_text('[dne]\nmethod = ["gezo", "spsa"]\n[zo]\ncandidates = 3\nsigma = 0.02\n[gezo]\nlocal_epochs = 1\n'
                   f'[output]\ndir = "{tmp_path / "out"}"\n')
    old_ids, old_log = dry_run_ids(dne_bin, old, "--set", "gezo.budget=900")
    new_ids, new_log = dry_run_ids(dne_bin, new, "--set", "zo.budget=900")
    assert len(old_ids) == 2 and old_ids == new_ids
    notes = sorted(line for line in old_log.splitlines() if line.startswith("# deprecated: "))
    assert notes == [f"# deprecated: gezo.{k} is now zo.{k} (the same key; experiment ids do not change)"
                     for k in ("budget", "candidates", "sigma")], old_log
    assert "# deprecated" not in new_log
    both = tmp_path / "both.toml"
    both.write_text('[gezo]\ncandidates = 3\n[zo]\ncandidates = 4\n')
    proc = run_dne(dne_bin, "run", "--config", both, "--dry-run")
    assert proc.returncode == 2 and "set twice" in proc.stderr and "keep zo.candidates" in proc.stderr, proc.stderr
