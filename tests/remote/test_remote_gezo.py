"""GeZO through `fm.kind = "remote"` against `dne serve`, compared with the same FM in process.

The reference is the in-process run of the same experiment (fm.kind = "cnn" with the served
model's keys): the learned noise, the metrics of the method and of its norm-matched control, and
the query count must be the same bits whether the FM answers through JSON or the binary tensor
extension, from one rank or from a group of two ranks with several requests in flight. Then the
server is killed (SIGKILL) in the middle of a run and restarted on the same port: the client
retries, and the result must again equal the undisturbed run. Everything is read back with h5py."""
import json
import os
import signal
import subprocess
import time

import h5py
import numpy as np
import pytest

from conftest import start_dne_serve
from dne_testing import run_dne
from oip_reference_server import oip_request

SERVED = ('[data]\nimage_size = 32\n[sweep]\nseeds = [3]\n'
          '[fm]\nkind = "cnn"\nwidth = 8\nembed_dim = 16\n')
EXPERIMENT = ('[data]\nimage_size = 32\nn_train = 120\nn_test = 80\n'
              '[dne]\nmethod = "gezo"\nepochs = 1\nbatch_size = 40\n'
              '[zo]\ncandidates = 6\n[gezo]\nlocal_epochs = 2\n'
              '[sweep]\nseeds = [3]\n')


def write_config(path, out, fm, api=""):
    path.write_text(EXPERIMENT + fm + api + f'[output]\ndir = "{out}"\n')
    return path


def remote_config(path, out, url, **api):
    keys = "".join(f"{k} = {v}\n" for k, v in api.items())
    return write_config(path, out, '[fm]\nkind = "remote"\n', f'[api]\nurl = "{url}"\nmodel = "dne"\n{keys}')


def result(out):
    """(noise, metrics, control metrics, queries, provenance) of the run's one experiment file."""
    files = sorted((out / "experiments").glob("*.h5"))
    assert len(files) == 1, files
    with h5py.File(files[0], "r") as f:
        return (f["noise"][...], dict(f["metrics"].attrs), dict(f["control/metrics"].attrs),
                int(f["provenance"].attrs["queries"]), dict(f["provenance"].attrs))


@pytest.fixture(scope="module")
def reference(dne_bin, tmp_path_factory):
    """The in-process run: the bits every remote run must reproduce."""
    tmp = tmp_path_factory.mktemp("in_process")
    cfg = write_config(tmp / "run.toml", tmp / "out", SERVED[SERVED.index("[fm]"):])
    proc = run_dne(dne_bin, "run", "--config", cfg)
    assert proc.returncode == 0, proc.stderr
    return result(tmp / "out")


def serve_config(tmp_path):
    path = tmp_path / "serve.toml"
    path.write_text(SERVED)
    return path


def assert_same_as(reference, got):
    noise, metrics, control, queries, _ = got
    assert np.array_equal(noise, reference[0]) and noise.dtype == reference[0].dtype
    assert np.abs(noise).max() > 0  # GeZO moved: the comparison is not of two zero images
    assert metrics == reference[1]
    assert control == reference[2]
    assert queries == reference[3] > 0


@pytest.mark.parametrize("ranks,api", [
    (None, {"binary": "false"}),
    (None, {"binary": "true", "concurrency": 4}),
    (2, {"binary": "true", "concurrency": 3}),
    (2, {"binary": "false", "concurrency": 1}),
])
def test_remote_gezo_equals_in_process(dne_bin, dne_serve, reference, tmp_path, ranks, api):
    server = dne_serve(serve_config(tmp_path), "--access-log", tmp_path / "access.log")
    extra = ["--set", "sweep.ranks_per_experiment=2"] if ranks else []
    cfg = remote_config(tmp_path / "run.toml", tmp_path / "out", server.url, **api)
    proc = run_dne(dne_bin, "run", "--config", cfg, *extra, mpi_ranks=ranks)
    assert proc.returncode == 0, proc.stderr
    got = result(tmp_path / "out")
    assert_same_as(reference, got)
    prov = got[4]
    assert prov["api_encoding"] == ("binary" if api["binary"] == "true" else "json")
    assert prov["api_retries"] == 0 and prov["api_requests"] > 0
    assert prov["group_size"] == (ranks or 1)
    # Every request the group made reached the server, and nothing else did (health + metadata
    # once per rank, the rest inferences).
    log = (tmp_path / "access.log").read_text().splitlines()
    infers = [line for line in log if "/infer 200" in line]
    assert len(infers) + 2 * (ranks or 1) == prov["api_requests"] == len(log)


def test_remote_rejects_whitebox(dne_bin, tmp_path):
    cfg = remote_config(tmp_path / "run.toml", tmp_path / "out", "http://127.0.0.1:9")
    proc = run_dne(dne_bin, "run", "--config", cfg, "--set", 'dne.method="whitebox"')
    assert proc.returncode == 2
    assert "whitebox" in proc.stderr and "gradients" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_server_killed_and_restarted_mid_run(dne_bin, reference, tmp_path):
    """SIGKILL the server after 25 inferences, start it again on the same port a second later:
    the client retries through the outage and the result equals the undisturbed run."""
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    config = serve_config(tmp_path)
    first = start_dne_serve(dne_bin, config, "--latency-ms", "20")
    port = first.url.rsplit(":", 1)[1]
    cfg = remote_config(tmp_path / "run.toml", tmp_path / "out", first.url, retries=12, timeout_s=10)
    run = subprocess.Popen([dne_bin, "run", "--config", str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, env=env)
    second = None
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            status, _, body = oip_request(first.url + "/dne/stats")
            if status == 200 and json.loads(body)["requests"] >= 25:
                break
            time.sleep(0.02)
        assert run.poll() is None, "the run finished before the server could be killed: make it longer"
        first.proc.send_signal(signal.SIGKILL)
        first.stop()
        time.sleep(1.0)
        second = start_dne_serve(dne_bin, config, "--port", port)
        stdout, stderr = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
        if second is not None:
            second.stop()
    assert run.returncode == 0, stderr
    got = result(tmp_path / "out")
    assert_same_as(reference, got)
    assert got[4]["api_retries"] >= 1


@pytest.mark.parametrize("url,fragment", [("http://user:secret@127.0.0.1:9", "credentials"),
                                          ("ftp://127.0.0.1:9", "is not http")])
def test_bad_url_is_one_line_before_anything_is_written(dne_bin, tmp_path, url, fragment):
    cfg = remote_config(tmp_path / "run.toml", tmp_path / "out", url)
    proc = run_dne(dne_bin, "run", "--config", cfg)
    assert proc.returncode == 2
    assert fragment in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "secret" not in proc.stderr  # the credentials are not repeated
    assert not (tmp_path / "out").exists()
