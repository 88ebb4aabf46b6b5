"""analysis/noise_regions.py on a hand-built run directory: energy shares and cue cosines by hand."""
import h5py
import numpy as np

from analysis import noise_regions

CONFIG = '[dne]\nmethod = "whitebox"\n[sweep]\nseeds = {seed}\n'


def write(run_dir, seed, noise, control):
    (run_dir / "experiments").mkdir(parents=True, exist_ok=True)
    with h5py.File(run_dir / "experiments" / f"e{seed}.h5", "w") as f:
        f.attrs["config"] = CONFIG.format(seed=seed)
        f["noise"] = np.asarray(noise, np.float32)
        f["control/noise"] = np.asarray(control, np.float32)
        f["regions/sa"] = np.array([[1, 0], [0, 0]], np.int32)
        f["regions/disease"] = np.array([[1, 1], [0, 0]], np.int32)
        f["regions/breast_map"] = np.array([[1, 0], [0, 0]], np.float32)
        f["regions/marker_map"] = np.array([[0, 0], [0, 1]], np.float32)
        f["regions/effusion_map"] = np.array([[1, 1], [0, 0]], np.float32)


def test_energy_and_cosines_by_hand(tmp_path, capsys):
    # seed 0: noise (3, 0; 0, 4): energy 25, SA 9/25, disease 9/25, elsewhere 16/25;
    #   cos with breast (1, 0; 0, 0) = 3/5, with marker = 4/5, with effusion (1, 1; 0, 0) = 3/(5 sqrt 2)
    # seed 1: noise (0, 1; 0, 0): SA 0, disease 1, elsewhere 0; cos breast 0, marker 0, effusion 1/sqrt 2
    write(tmp_path, 0, [[3, 0], [0, 4]], [[0, 0], [1, 0]])
    write(tmp_path, 1, [[0, 1], [0, 0]], [[0, 0], [1, 0]])
    assert noise_regions.main([str(tmp_path), "--figure", str(tmp_path / "f.png")]) == 0
    out = capsys.readouterr().out
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:5]]
            for line in out.splitlines() if line.startswith("| ") and not line.startswith("| measure")}
    # means over the two seeds; the control (pixel (1, 0)) lies outside every region
    assert rows["energy_sa"][0].startswith(f"{(9 / 25 + 0) / 2:.3f} [")
    assert rows["energy_disease"][0].startswith(f"{(9 / 25 + 1) / 2:.3f} [")
    assert rows["energy_elsewhere"][1].startswith("1.000 [1.000, 1.000]")
    assert rows["cos_breast"][0].startswith(f"{0.3:.3f} [")
    assert rows["cos_effusion"][0].startswith(f"{(3 / (5 * 2 ** 0.5) + 2 ** -0.5) / 2:.3f} [")
    assert rows["energy_sa"][2].startswith(f"{0.18:+.3f} [")
    assert "Region areas: SA 0.250, effusion 0.500" in out
    assert (tmp_path / "f.png").stat().st_size > 1000


def test_no_phantom_runs_is_an_error(tmp_path, capsys):
    (tmp_path / "experiments").mkdir()
    assert noise_regions.main([str(tmp_path)]) == 1
    assert "no noise experiment" in capsys.readouterr().err
