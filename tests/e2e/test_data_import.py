"""End-to-end tests of `dne data import` on a small CheXpert-layout data set (docs/datasets.md).

The data set is built here: CheXpert-v1.0-small/train.csv and valid.csv with the published 19
columns, and one real 16x16 greyscale image per row, encoded by the small PNG writer below (numpy
pixels, zlib, CRC32; the files keep CheXpert's .jpg names, decoders sniff the content). Expected
manifests are written by hand from the rules; bad input must give exit code 2, one stderr line
naming the option or file, and no manifest.
"""
import csv
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from dne_testing import run_dne

HEADER = ("Path,Sex,Age,Frontal/Lateral,AP/PA,No Finding,Enlarged Cardiomediastinum,Cardiomegaly,"
          "Lung Opacity,Lung Lesion,Edema,Consolidation,Pneumonia,Atelectasis,Pneumothorax,"
          "Pleural Effusion,Pleural Other,Fracture,Support Devices")
FINDINGS = HEADER.split(",")[5:]


def write_png(path, pixels):
    """8-bit greyscale PNG of the uint8 array `pixels` (H, W)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    height, width = pixels.shape
    raw = b"".join(b"\x00" + pixels[y].tobytes() for y in range(height))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)


def row(path, sex, age, frontal, view, **findings):
    values = [findings.get(name.replace(" ", "_"), "") for name in FINDINGS]
    return ",".join([path, sex, str(age), frontal, view, *values])


# (Path, Sex, Age, Frontal/Lateral, AP/PA, Pleural Effusion) of train.csv and valid.csv.
TRAIN = [
    ("CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg", "Female", 68, "Frontal", "AP", "1.0"),
    ("CheXpert-v1.0-small/train/patient00001/study1/view2_lateral.jpg", "Female", 68, "Lateral", "", "1.0"),
    ("CheXpert-v1.0-small/train/patient00002/study1/view1_frontal.jpg", "Male", 87, "Frontal", "PA", "-1.0"),
    ("CheXpert-v1.0-small/train/patient00002/study2/view1_frontal.jpg", "Male", 87, "Frontal", "AP", ""),
    ("CheXpert-v1.0-small/train/patient00003/study1/view1_frontal.jpg", "Unknown", 50, "Frontal", "PA", "0.0"),
    ("CheXpert-v1.0-small/train/patient00004/study1/view1_frontal.jpg", "Female", 41, "Frontal", "AP", "0.0"),
]
VALID = [
    ("CheXpert-v1.0-small/valid/patient64541/study1/view1_frontal.jpg", "Male", 73, "Frontal", "AP", "1.0"),
    ("CheXpert-v1.0-small/valid/patient64542/study1/view1_frontal.jpg", "Female", 70, "Frontal", "PA", "0.0"),
]


@pytest.fixture()
def chexpert(tmp_path):
    """tmp_path/CheXpert-v1.0-small with the tables above, 20 more training patients (all kept
    under the default rules) and a real image for every row."""
    extra = [(f"CheXpert-v1.0-small/train/patient{p:05d}/study1/view1_frontal.jpg",
              "Female" if p % 2 else "Male", 30 + p, "Frontal", "PA", "1.0" if p % 3 == 0 else "0.0")
             for p in range(5, 25)]
    root = tmp_path / "CheXpert-v1.0-small"
    root.mkdir()
    for name, rows in [("train.csv", TRAIN + extra), ("valid.csv", VALID)]:
        lines = [HEADER] + [row(p, s, a, f, v, Pleural_Effusion=e) for p, s, a, f, v, e in rows]
        (root / name).write_text("\n".join(lines) + "\n")
        for i, (path, *_rest) in enumerate(rows):  # every image distinct: one image in two splits is a leak
            offset = i + (50 if name == "valid.csv" else 0)
            pixels = ((np.add.outer(np.arange(16), np.arange(16)) * 8 + offset) % 256).astype(np.uint8)
            write_png(tmp_path / path, pixels)
    return root


def read_manifest(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def import_args(root, out, *extra):
    return ["data", "import", "--format", "chexpert", "--root", root, "--task", "Pleural Effusion",
            "--out", out, *extra]


def assert_one_line_error(proc, *needles):
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def test_official_split_manifest_by_hand(dne_bin, chexpert, tmp_path):
    out = tmp_path / "out" / "manifest.csv"
    proc = run_dne(dne_bin, *import_args(chexpert, out, "--split", "official", "--val-fraction", "0"))
    assert proc.returncode == 0, proc.stderr
    header, rows = read_manifest(out)
    assert header == ["path", "split", "sex", "label", "patient", "age", "view"]
    base = "../CheXpert-v1.0-small/"
    # Dropped: the lateral view, the uncertain (-1.0) effusion, the unknown sex; blank -> 0.
    expected = [
        [base + "train/patient00001/study1/view1_frontal.jpg", "train", "1", "1", "patient00001", "68", "AP"],
        [base + "train/patient00002/study2/view1_frontal.jpg", "train", "0", "0", "patient00002", "87", "AP"],
        [base + "train/patient00004/study1/view1_frontal.jpg", "train", "1", "0", "patient00004", "41", "AP"],
    ]
    for p in range(5, 25):
        expected.append([f"{base}train/patient{p:05d}/study1/view1_frontal.jpg", "train", "1" if p % 2 else "0",
                         "1" if p % 3 == 0 else "0", f"patient{p:05d}", str(30 + p), "PA"])
    expected += [
        [base + "valid/patient64541/study1/view1_frontal.jpg", "test", "0", "1", "patient64541", "73", "AP"],
        [base + "valid/patient64542/study1/view1_frontal.jpg", "test", "1", "0", "patient64542", "70", "PA"],
    ]
    assert rows == expected
    for r in rows:  # every path resolves from the manifest's folder to a PNG
        assert (out.parent / r[0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not Path(str(out) + ".tmp").exists()
    # Summary: 23 train rows with 1 + 7 positives (patients 6, 9, ..., 24), 2 test rows with 1.
    assert "25 rows" in proc.stdout
    assert "train 23 rows, 8 positive, 23 patients" in proc.stdout
    assert "test  2 rows, 1 positive, 2 patients" in proc.stdout
    assert "dropped 3 rows: view not PA/AP 1, uncertain label 1, unknown sex 1" in proc.stdout
    female = 2 + sum(p % 2 for p in range(5, 25)) + 1
    assert f"female share: {female / 25:.3f} ({female} of 25 rows with known sex)" in proc.stdout


def test_patient_split_keeps_patients_whole(dne_bin, chexpert, tmp_path):
    out = tmp_path / "manifest.csv"
    proc = run_dne(dne_bin, *import_args(chexpert, out, "--views", "all", "--uncertain", "one", "--sa", "age:60",
                                          "--seed", "5"))
    assert proc.returncode == 0, proc.stderr
    header, rows = read_manifest(out)
    assert header[-1] == "sa"
    assert len(rows) == len(TRAIN) + 20 + len(VALID)  # nothing dropped under these rules
    split_of = {}
    for r in rows:
        assert split_of.setdefault(r[4], r[1]) == r[1], f"{r[4]} in two splits"
        assert r[7] == ("1" if int(r[5]) >= 60 else "0")
    patients = len(split_of)  # 26: 4 + 20 training, 2 validation patients
    assert patients == 26
    counts = {s: list(split_of.values()).count(s) for s in ("train", "val", "test")}
    assert counts == {"test": round(0.2 * 26), "val": round(0.1 * 26), "train": 26 - 5 - 3}
    again = tmp_path / "again.csv"
    assert run_dne(dne_bin, *import_args(chexpert, again, "--views", "all", "--uncertain", "one", "--sa", "age:60",
                                         "--seed", "5")).returncode == 0
    assert read_manifest(again)[1] == rows  # deterministic: same seed, same manifest


@pytest.mark.parametrize("args, needles", [
    (["--format", "padchest"], ["config error", "--format 'padchest'", "chexpert, mimic-cxr, nih"]),
    (["--root", "/nonexistent/chexpert"], ["config error", "--root", "/nonexistent/chexpert"]),
    (["--task", "Effusion"], ["config error", "--task 'Effusion'", "Pleural Effusion", "Support Devices"]),
    (["--split", "official", "--test-fraction", "0.3"], ["config error", "--test-fraction", "official"]),
    (["--uncertain", "maybe"], ["config error", "--uncertain 'maybe'"]),
    (["--sa", "race"], ["config error", "--sa 'race'"]),
    (["--val-fraction", "lots"], ["config error", "--val-fraction"]),
])
def test_bad_options_exit_2_with_one_line(dne_bin, chexpert, tmp_path, args, needles):
    out = tmp_path / "manifest.csv"
    base = {"--format": "chexpert", "--root": str(chexpert), "--task": "Pleural Effusion", "--out": str(out)}
    extra = []
    for i in range(0, len(args), 2):
        if args[i] in base:
            base[args[i]] = args[i + 1]
        else:
            extra += args[i:i + 2]
    proc = run_dne(dne_bin, "data", "import", *[x for kv in base.items() for x in kv], *extra)
    assert_one_line_error(proc, *needles)
    assert not out.exists() and not Path(str(out) + ".tmp").exists()


def test_missing_root_option_and_subcommands(dne_bin, tmp_path):
    out = tmp_path / "manifest.csv"
    proc = run_dne(dne_bin, "data", "import", "--format", "chexpert", "--task", "Edema", "--out", out)
    assert_one_line_error(proc, "--root", "required")
    assert not out.exists()
    assert_one_line_error(run_dne(dne_bin, "data", "export"), "unknown subcommand 'export'")
    assert_one_line_error(run_dne(dne_bin, "data"), "import")
    proc = run_dne(dne_bin, "data", "import", "--help")
    assert proc.returncode == 0 and "--uncertain" in proc.stdout and "--skip-missing" in proc.stdout
    assert "data" in run_dne(dne_bin, "--help").stdout


def test_missing_image_names_the_line(dne_bin, chexpert, tmp_path):
    (chexpert / "train" / "patient00004" / "study1" / "view1_frontal.jpg").unlink()
    out = tmp_path / "manifest.csv"
    proc = run_dne(dne_bin, *import_args(chexpert, out))
    assert_one_line_error(proc, "data error", "train.csv:7", "image not found",
                          "patient00004/study1/view1_frontal.jpg", "--skip-missing")
    assert not out.exists() and not Path(str(out) + ".tmp").exists()
    proc = run_dne(dne_bin, *import_args(chexpert, out, "--skip-missing"))
    assert proc.returncode == 0, proc.stderr
    assert "missing image 1" in proc.stdout
    assert "patient00004" not in out.read_text()


def test_imported_manifest_runs_end_to_end(dne_bin, chexpert, tmp_path):
    # The user's path: import, dry run, run; the run reads exactly the imported rows.
    from dne_testing import MANIFEST_CONFIG, MANIFEST_SMALL
    import h5py
    out = tmp_path / "manifest.csv"
    assert run_dne(dne_bin, *import_args(chexpert, out, "--split", "official", "--val-fraction", "0")).returncode == 0
    header, rows = read_manifest(out)
    n_test = sum(r[header.index("split")] == "test" for r in rows)
    run = ["run", "--config", MANIFEST_CONFIG, "--out", tmp_path / "run", *MANIFEST_SMALL,
           "--set", f"data.manifest=\"{out}\"", "--set", "data.image_size=16", "--set", "fm.patch_size=4",
           "--set", "data.resize=crop"]
    dry = run_dne(dne_bin, *run, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "to run" in dry.stdout and not (tmp_path / "run").exists()
    proc = run_dne(dne_bin, *run)
    assert proc.returncode == 0, proc.stderr
    (result,) = (tmp_path / "run" / "experiments").glob("*.h5")
    with h5py.File(result, "r") as f:
        assert f["test/score"].shape == (n_test,)
        want = [int(r[header.index("sex")]) for r in rows if r[header.index("split")] == "test"]
        assert list(f["test/sa"][:]) == want
