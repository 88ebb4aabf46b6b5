"""A full filesystem (issue 15, audit rows 1 and 10), on a small tmpfs the test mounts (root only:
skipped with the reason otherwise). Every write is checked: the program exits 2 with one line that
names the path and the system's reason, and does not crash."""
import os
import subprocess
import uuid

import pytest

from dne_testing import SMALL, run_dne


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB tmpfs at tmp_path/disk, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    where = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(where)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


def one_line(proc):
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_phantom_on_a_full_disk_exits_2(dne_bin, small_disk):  # audit row 10
    proc = run_dne(dne_bin, "phantom", "--out", small_disk / "phantom", "--set", "data.n_train=2000")
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    line = one_line(proc)
    assert line.startswith("dne: store error:") and "No space left on device" in line, line
    assert not (small_disk / "phantom" / "manifest.csv").exists()
    assert not [p for p in (small_disk / "phantom").rglob("*.png") if p.stat().st_size == 0]


def test_run_on_a_full_disk_exits_2_without_a_crash(dne_bin, small_disk, tmp_path):  # audit row 1
    cfg = tmp_path / "run.toml"
    cfg.write_text('[dne]\nmethod = "none"\n[output]\nsave_embeddings = true\n')
    proc = run_dne(dne_bin, "run", "--config", cfg, "--out", small_disk / "out", *SMALL)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "No space left on device" in proc.stderr, proc.stderr
    assert [p for p in (small_disk / "out" / "experiments").glob("*.h5")] == []
