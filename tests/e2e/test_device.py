"""run.device, run.precision and comm.backend on a machine without a GPU (issue 11): `auto` falls
back to the CPU and says why, the result file records where it ran, and asking for what the
machine lacks is one line, exit 2, before anything is written. The GPU side is tests/gpu."""
import h5py
import pytest

from dne_testing import SMALL, run_dne


def config(tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text(f'[dne]\nmethod = "none"\n[sweep]\nseeds = [0]\n[output]\ndir = "{tmp_path / "out"}"\n')
    return cfg


def gpu_visible(dne_bin, tmp_path):
    probe = run_dne(dne_bin, "run", "--config", config(tmp_path), "--dry-run", "--set", "run.device=cuda", *SMALL)
    return probe.returncode == 0


@pytest.mark.parametrize("setting,fragment", [
    ("run.device=cuda", 'run.device = "cuda": '),
    ("run.precision=bf16", 'run.precision = "bf16" is for FM forwards on a GPU'),
    ("comm.backend=nccl", 'comm.backend = "nccl" needs GPUs'),
])
def test_what_the_machine_lacks_is_one_line_and_exit_2(dne_bin, tmp_path, setting, fragment):
    if gpu_visible(dne_bin, tmp_path):
        pytest.skip("a GPU is visible here: the CPU-only refusals do not apply")
    proc = run_dne(dne_bin, "run", "--config", config(tmp_path), "--set", setting, *SMALL)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("dne: config error: ") and fragment in lines[0], proc.stderr
    assert not (tmp_path / "out").exists()


def test_auto_falls_back_to_the_cpu_and_records_it(dne_bin, tmp_path):
    if gpu_visible(dne_bin, tmp_path):
        pytest.skip("a GPU is visible here: auto chooses it (tests/gpu)")
    proc = run_dne(dne_bin, "run", "--config", config(tmp_path), *SMALL)
    assert proc.returncode == 0, proc.stderr
    assert "# device: cpu (auto: " in proc.stdout and "rank-group sums: mpi" in proc.stdout, proc.stdout[:600]
    [path] = (tmp_path / "out" / "experiments").glob("*.h5")
    with h5py.File(path, "r") as f:
        prov = f["provenance"].attrs
        assert (prov["device"], prov["precision"], prov["communicator"]) == ("cpu", "fp32", "mpi")


def test_device_keys_take_one_value_per_run(dne_bin, tmp_path):
    proc = run_dne(dne_bin, "run", "--config", config(tmp_path), "--set", 'run.device=["cpu", "auto"]', *SMALL)
    assert proc.returncode == 2
    assert "run.device applies to the whole run" in proc.stderr


@pytest.mark.parametrize("setting,fragment", [
    ("run.device=cuda", 'run.device = "cuda": '),
    ("run.precision=bf16", 'run.precision = "bf16" is for FM forwards on a GPU'),
])
def test_serve_takes_the_device_rule_of_run(dne_bin, tmp_path, setting, fragment):
    """dne serve chooses its device by the rule dne run uses (comm::DeviceChoice): asking on this
    CPU machine for what it lacks is one line and exit 2 before the server binds."""
    if gpu_visible(dne_bin, tmp_path):
        pytest.skip("a GPU is visible here: the CPU-only refusals do not apply")
    cfg = tmp_path / "serve.toml"
    cfg.write_text('[data]\nimage_size = 32\n[fm]\nkind = "cnn"\nwidth = 8\nembed_dim = 16\n')
    proc = run_dne(dne_bin, "serve", "--config", cfg, "--port", "0", "--set", setting, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("dne: config error: ") and fragment in lines[0], proc.stderr
    assert "listening on" not in proc.stdout
