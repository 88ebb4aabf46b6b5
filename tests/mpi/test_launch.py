"""The launch/ scripts as a user runs them: local.sh, the SLURM template (under a stand-in `srun`
that starts the ranks with mpirun) and rank-env.sh's GPU mapping (under a stand-in nvidia-smi)."""
import os
import subprocess

import h5py

from dne_testing import REPO, SMALL

ONE = [*SMALL, "--set", "dne.method=none", "--set", "sweep.seeds=[0, 1]"]


def env_with(tmp_path, **extra):
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1", **extra)
    return env


def fake_tool(directory, name, body):
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(0o755)


def test_local_wrapper_runs_a_sweep_on_two_ranks(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run([str(REPO / "launch" / "local.sh"), str(REPO / "experiments" / "quickstart.toml"), "2",
                           "--out", str(out), *ONE], capture_output=True, text=True, env=env_with(tmp_path),
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    with h5py.File(out / "index.h5", "r") as f:
        assert f.attrs["world_size"] == 2 and f.attrs["complete"] == 2


def test_slurm_template_passes_config_threads_and_options(tmp_path):
    # Stand-in srun: drop srun's own options, start the command on 2 ranks with mpirun.
    bin_dir = tmp_path / "bin"
    fake_tool(bin_dir, "srun", 'while [[ "$1" == --* ]]; do shift; done\n'
                               'exec mpirun -n 2 --oversubscribe "$@"\n')
    out = tmp_path / "out"
    env = env_with(tmp_path, PATH=f"{bin_dir}:{os.environ['PATH']}", SLURM_CPUS_PER_TASK="1",
                   SLURM_SUBMIT_DIR=str(REPO), SLURM_JOB_ID="42", SLURM_NTASKS="2", SLURM_JOB_NUM_NODES="1")
    proc = subprocess.run(["bash", str(REPO / "launch" / "slurm.sbatch"), str(REPO / "experiments" / "quickstart.toml"),
                           "--out", str(out), *ONE], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "dne-sweep: job 42: 2 ranks on 1 node(s), 1 thread(s) per rank" in proc.stdout
    with h5py.File(out / "index.h5", "r") as f:
        assert f.attrs["world_size"] == 2 and f.attrs["complete"] == 2
        for id_ in f["experiments/id"].asstr()[:]:
            assert f["links"][id_]["provenance"].attrs["torch_threads"] == 1


def test_rank_env_maps_local_rank_to_one_gpu(tmp_path):
    bin_dir = tmp_path / "bin"
    fake_tool(bin_dir, "nvidia-smi", 'echo "GPU 0: H100 (UUID: a)"; echo "GPU 1: H100 (UUID: b)"\n')
    env = env_with(tmp_path, PATH=f"{bin_dir}:{os.environ['PATH']}")
    env.pop("CUDA_VISIBLE_DEVICES", None)
    for local, expected in [("0", "0"), ("1", "1"), ("3", "1")]:
        proc = subprocess.run([str(REPO / "launch" / "rank-env.sh"), "bash", "-c", "echo $CUDA_VISIBLE_DEVICES"],
                              capture_output=True, text=True, env=dict(env, SLURM_LOCALID=local))
        assert proc.returncode == 0 and proc.stdout.strip() == expected, (local, proc.stdout, proc.stderr)


def test_rank_env_runs_the_command_when_nvidia_smi_fails_or_lists_mig(tmp_path):
    # A node with nvidia-smi but no driver: nvidia-smi fails; the rank must still start, unchanged.
    broken = tmp_path / "broken"
    fake_tool(broken, "nvidia-smi", 'echo "NVIDIA-SMI has failed" >&2; exit 9\n')
    env = env_with(tmp_path, PATH=f"{broken}:{os.environ['PATH']}", SLURM_LOCALID="1")
    env.pop("CUDA_VISIBLE_DEVICES", None)
    proc = subprocess.run([str(REPO / "launch" / "rank-env.sh"), "bash", "-c", "echo [$CUDA_VISIBLE_DEVICES]"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", (proc.stdout, proc.stderr)
    # MIG lines are indented under their GPU and are not GPUs of their own: 1 GPU here.
    mig = tmp_path / "mig"
    fake_tool(mig, "nvidia-smi", 'echo "GPU 0: H100 (UUID: a)"; echo "  MIG 3g.40gb Device 0: (UUID: m0)"; '
                                 'echo "  MIG 3g.40gb Device 1: (UUID: m1)"\n')
    env = dict(env, PATH=f"{mig}:{os.environ['PATH']}", SLURM_LOCALID="2")
    proc = subprocess.run([str(REPO / "launch" / "rank-env.sh"), "bash", "-c", "echo [$CUDA_VISIBLE_DEVICES]"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and proc.stdout.strip() == "[0]", (proc.stdout, proc.stderr)
