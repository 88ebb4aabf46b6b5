"""Seeds that vary the data of a manifest (issue 29, data.resample): with a fixed manifest every
seed trained on the same rows, so ERM's intervals carried no data variance. With data.resample
each seed draws its own stratified subsample or bootstrap of the training split; the default
keeps today's behaviour and ids. Real dne runs on the phantom's PNGs (120 train rows), the
training rows each seed used read back with h5py (output.save_embeddings: their labels and
attributes, in order)."""
from collections import Counter

import h5py
import pytest

from dne_testing import MANIFEST_CONFIG, MANIFEST_SMALL, run_dne


def erm_on_two_seeds(dne_bin, out, manifest, *extra):
    """seed -> (id, metrics, training (label, sa) pairs in order)."""
    proc = run_dne(dne_bin, "run", "--config", MANIFEST_CONFIG, "--out", out, *MANIFEST_SMALL,
                   "--set", f'data.manifest="{manifest}"', "--set", "sweep.seeds=[0, 1]",
                   "--set", "output.save_embeddings=true", *extra)
    assert proc.returncode == 0, proc.stderr
    found = {}
    for path in sorted((out / "experiments").glob("*.h5")):
        with h5py.File(path, "r") as f:
            rows = list(zip(f["embeddings/train/label"][:].tolist(), f["embeddings/train/sa"][:].tolist()))
            found[int(f.attrs["seed"])] = (path.stem, dict(f["metrics"].attrs), rows)
    assert sorted(found) == [0, 1]
    return found


def test_default_is_the_same_data_on_every_seed_and_keeps_its_ids(dne_bin, phantom_dir, tmp_path):
    manifest = phantom_dir / "manifest.csv"
    plain = erm_on_two_seeds(dne_bin, tmp_path / "plain", manifest)
    assert plain[0][2] == plain[1][2] and len(plain[0][2]) == 120  # every seed: all training rows
    explicit = erm_on_two_seeds(dne_bin, tmp_path / "none", manifest, "--set", 'data.resample="none"')
    assert [explicit[s][0] for s in (0, 1)] == [plain[s][0] for s in (0, 1)]  # same ids as before the key


@pytest.mark.parametrize("how", ["subsample", "bootstrap"])
def test_resampling_gives_each_seed_its_own_training_data(dne_bin, phantom_dir, tmp_path, how):
    manifest = phantom_dir / "manifest.csv"
    full = erm_on_two_seeds(dne_bin, tmp_path / "plain", manifest)[0][2]
    drawn = erm_on_two_seeds(dne_bin, tmp_path / "a", manifest, "--set", f'data.resample="{how}"',
                             "--set", "data.resample_fraction=0.5")
    assert drawn[0][2] != drawn[1][2]  # each seed its own rows
    for seed in (0, 1):
        per_cell = Counter(drawn[seed][2])
        for cell, n in Counter(full).items():  # stratified: every (label, sa) cell keeps its share
            assert per_cell[cell] == (round(0.5 * n + 1e-9) if how == "subsample" else n), (cell, per_cell, n)
    again = erm_on_two_seeds(dne_bin, tmp_path / "b", manifest, "--set", f'data.resample="{how}"',
                             "--set", "data.resample_fraction=0.5")
    assert {s: drawn[s][1:] for s in (0, 1)} == {s: again[s][1:] for s in (0, 1)}  # deterministic per seed
