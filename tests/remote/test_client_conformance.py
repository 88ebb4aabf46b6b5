"""fm.kind = "remote" (the C++ Open Inference Protocol client inside `dne run`) against an
independent reference server.

The server is tests/pylib/oip_reference_server.py: Python's http.server, json and NumPy, written
from the protocol text and sharing no code with the C++ side (its own protocol handling is checked
first, without dne). It records every correct answer it gives (inputs and outputs, float32), so
the embeddings a run saves are checked bit for bit against what went over the wire, in JSON and
in the binary tensor encoding. Its "m-faulty" model misbehaves on purpose (a truncated body, a
wrong output shape, NaN, 500s, 429s, a stall, wrong metadata), so the client's errors, retries
and timeouts, and the sweep carrying on past a failed experiment, are seen from outside: exit
codes, wall times, index.h5 rows and the /provenance attributes, read back with h5py.
"""
import json
import socket
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from dne_testing import run_dne
from oip_reference_server import infer_body, infer_result, oip_request

H, D = 32, 12            # the reference server's image size and embedding width (its defaults here)
N_TRAIN, N_TEST = 120, 80
TOKEN = "tok-SECRET-1234"


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(e) for e in v) + "]"
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string for the plain text used here
    return str(v)


def run_client(dne_bin, tmp_path, url, name="run", model="m", fm_batch_size=None, **api):
    """`dne run` of ERM on the phantom with fm.kind = "remote" and the [api] keys given (and
    fm.batch_size, the images per request when a split is embedded):
    (CompletedProcess, output folder, wall seconds)."""
    out = tmp_path / name
    lines = ["[data]", f"image_size = {H}", f"n_train = {N_TRAIN}", f"n_test = {N_TEST}",
             "[fm]", 'kind = "remote"', *([f"batch_size = {fm_batch_size}"] if fm_batch_size else []),
             "[api]", *(f"{k} = {toml_value(v)}" for k, v in {"url": url, "model": model, **api}.items()),
             "[dne]", 'method = "none"', "[sweep]", "seeds = [0]",
             "[output]", f"dir = {toml_value(str(out))}", "save_embeddings = true"]
    config = tmp_path / f"{name}.toml"
    config.write_text("\n".join(lines) + "\n")
    start = time.monotonic()
    proc = run_dne(dne_bin, "run", "--config", config, timeout=300)
    return proc, out, time.monotonic() - start


def text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def index_rows(out):
    """One dict per experiment of OUT/index.h5: id, status, error, file, and the api.model axis if swept."""
    with h5py.File(Path(out) / "index.h5", "r") as f:
        e = f["experiments"]
        columns = {k: [text(v) for v in e[k][()]] for k in ("id", "status", "error", "file")}
        if "axes" in e and "api.model" in e["axes"]:
            columns["model"] = [text(v) for v in e["axes/api.model"][()]]
    return [dict(zip(columns, row)) for row in zip(*columns.values())]


def only_row(out):
    [row] = index_rows(out)
    return row


def provenance(out):
    [path] = sorted((Path(out) / "experiments").glob("*.h5"))
    with h5py.File(path, "r") as f:
        return {k: text(v) if isinstance(v, (bytes, str)) else v for k, v in f["provenance"].attrs.items()}


def answers(record):
    """The reference server's recorded correct answers, in order."""
    found = []
    for p in sorted(Path(record).glob("*.npz")):
        with np.load(p) as a:
            found.append({k: a[k] for k in a.files})
    return found


def failed_with(row, keywords):
    """The row failed with a one-line error holding one of the keywords (case-insensitive)."""
    error = row["error"].lower()
    return row["status"] == "failed" and "\n" not in row["error"] and any(k in error for k in keywords)


def closed_port():
    """A local port that nothing listens on (bound, read and released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_reference_server_self_check(reference_server, tmp_path):
    """The yardstick first (no dne): JSON, nested JSON and binary answers agree bit for bit with
    x @ W from the documented seed, ids are echoed, errors are {"error"} with fitting statuses."""
    server = reference_server(image_size=8, dim=5, seed=3, fault="nan", token_env="REF_TOKEN",
                              env={"REF_TOKEN": TOKEN}, record=tmp_path / "rec")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert oip_request(server.url + "/v2/health/ready")[0] == 200  # open without the token
    assert oip_request(server.url + "/v2/models/m")[0] == 401
    assert "binary_tensor_data" in json.loads(oip_request(server.url + "/v2", headers=auth)[2])["extensions"]
    x = np.random.default_rng(1).random((3, 1, 8, 8), dtype=np.float32)
    w = (np.random.default_rng(3).standard_normal((64, 5)) / np.sqrt(64)).astype(np.float32)
    want = x.reshape(3, 64) @ w
    for binary_input, binary_output, nested in [(False, False, False), (False, False, True), (True, True, False),
                                                (False, "all", False)]:
        body, headers = infer_body(x, binary_input, binary_output, nested, request_id="q1")
        status, h, reply = oip_request(server.url + "/v2/models/m/versions/1/infer", body, {**headers, **auth})
        assert status == 200, reply
        response, z, came_binary = infer_result(h, reply)
        assert response["id"] == "q1" and came_binary == bool(binary_output)
        assert z.tobytes() == want.tobytes()
    body, headers = infer_body(x)
    status, _, reply = oip_request(server.url + "/v2/models/m-faulty/infer", body, {**headers, **auth})
    assert status == 200 and b"NaN" in reply  # the bare token, which strict JSON parsers reject
    assert oip_request(server.url + "/v2/models/nope", headers=auth)[0] == 404
    status, _, reply = oip_request(server.url + "/v2/models/m/infer", b"{", {**headers, **auth})
    assert status == 400 and "error" in json.loads(reply)
    [a1, a2, a3, a4] = answers(tmp_path / "rec")  # the faulted answer is not recorded
    assert a3["binary_input"] and a3["binary_output"] and not a1["binary_input"]
    assert a4["outputs"].tobytes() == want.tobytes() and a4["inputs"].tobytes() == x.tobytes()


@pytest.mark.parametrize("binary, max_batch", [(False, 0), (True, 0), (True, 7)],
                         ids=["json", "binary", "binary-fm-batch-size-7"])
def test_saved_embeddings_are_the_servers_answers_bit_for_bit(dne_bin, reference_server, tmp_path, binary,
                                                              max_batch):
    record = tmp_path / "record"
    server = reference_server(record=record)
    proc, out, _ = run_client(dne_bin, tmp_path, server.url, binary=binary, fm_batch_size=max_batch or None)
    assert proc.returncode == 0, proc.stderr
    given = answers(record)
    assert given
    for a in given:
        assert a["inputs"].dtype == np.float32 and a["inputs"].shape[1:] == (1, H, H)
        assert a["outputs"].dtype == np.float32 and a["outputs"].shape == (len(a["inputs"]), D)
        assert bool(a["binary_input"]) == binary and bool(a["binary_output"]) == binary  # as sent on the wire
        assert max_batch == 0 or len(a["inputs"]) <= max_batch
    assert sum(len(a["inputs"]) for a in given) >= N_TRAIN + N_TEST
    served = {row.tobytes() for a in given for row in a["outputs"]}
    [path] = sorted((out / "experiments").glob("*.h5"))
    with h5py.File(path, "r") as f:
        for split, n in (("train", N_TRAIN), ("test", N_TEST)):
            x = f[f"embeddings/{split}/x"][()]
            assert x.shape == (n, D) and x.dtype == np.float32
            missing = [i for i, row in enumerate(x) if row.tobytes() not in served]
            assert not missing, f"{split} rows never answered by the server: {missing[:10]}"
    prov = provenance(out)
    assert prov["api_endpoint"].rstrip("/") == server.url
    assert prov["api_model"] == "m" and prov["api_model_version"] == "1"
    assert prov["api_requests"] >= len(given) and prov["api_retries"] == 0
    assert prov["api_encoding"] == ("binary" if binary else "json")
    pixels = H * H * (N_TRAIN + N_TEST)  # at least 4 bytes a value in binary, 2 ("0,") in JSON
    assert prov["api_bytes_sent"] >= (4 if binary else 2) * pixels
    assert prov["api_bytes_received"] >= (4 if binary else 2) * D * (N_TRAIN + N_TEST)
    assert 0 <= prov["api_latency_p50_ms"] <= prov["api_latency_p99_ms"]
    assert only_row(out)["status"] == "complete"


def assert_token_absent(tokens, proc, out):
    """No token in stdout, stderr or the raw bytes of any file under OUT (.h5 included)."""
    for token in tokens:
        assert token not in proc.stdout + proc.stderr, "the token is printed"
        leaks = [str(p) for p in Path(out).rglob("*") if p.is_file() and token.encode() in p.read_bytes()]
        assert not leaks, f"the token is written into {leaks}"


def test_bearer_token_is_sent_and_never_written(dne_bin, reference_server, tmp_path, monkeypatch):
    # The server's and the client's variables differ, so the client reads its own.
    server = reference_server(token_env="REF_SERVER_TOKEN", env={"REF_SERVER_TOKEN": TOKEN})
    monkeypatch.setenv("DNE_TEST_API_TOKEN", TOKEN)
    proc, out, _ = run_client(dne_bin, tmp_path, server.url, name="right", token_env="DNE_TEST_API_TOKEN")
    assert proc.returncode == 0, proc.stderr
    assert only_row(out)["status"] == "complete"
    assert_token_absent([TOKEN], proc, out)

    monkeypatch.setenv("DNE_TEST_API_TOKEN", "tok-WRONG-9999")
    proc, out, _ = run_client(dne_bin, tmp_path, server.url, name="wrong", token_env="DNE_TEST_API_TOKEN")
    assert proc.returncode == 2, proc.stderr
    row = only_row(out)
    assert failed_with(row, ["401"]), row
    assert_token_absent([TOKEN, "tok-WRONG-9999"], proc, out)


# fault -> (extra [api] keys, error keywords of the failed experiment)
FAULTS = {
    "garbage": ({}, ["json", "parse"]),
    "shape": ({}, ["shape"]),
    "nan": ({}, ["finite", "nan", "json", "parse"]),  # JSON has no NaN token: a parse error is fine too
    "nan-binary": ({"binary": True}, ["finite", "nan"]),
    "wronginput": ({}, ["input"]),
    "slow": ({"timeout_s": 1, "retries": 1}, ["timed out", "timeout"]),
}


@pytest.mark.parametrize("case", list(FAULTS))
def test_a_failing_model_fails_its_experiment_and_the_sweep_goes_on(dne_bin, reference_server, tmp_path, case):
    api, keywords = FAULTS[case]
    server = reference_server(fault=case.split("-")[0])
    proc, out, seconds = run_client(dne_bin, tmp_path, server.url, model=["m", "m-faulty"], **api)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.strip()
    rows = {row["model"]: row for row in index_rows(out)}
    assert set(rows) == {"m", "m-faulty"}
    assert rows["m"]["status"] == "complete" and rows["m"]["error"] == ""
    assert (out / rows["m"]["file"]).is_file()
    assert failed_with(rows["m-faulty"], keywords), rows["m-faulty"]
    if case == "wronginput":  # the message names the shapes, among them the declared side H + 1
        assert str(H + 1) in rows["m-faulty"]["error"], rows["m-faulty"]
    assert seconds < 60  # the slow model's 30 s answer is never waited for


def test_transient_500s_are_retried(dne_bin, reference_server, tmp_path):
    server = reference_server(fault="status500", fault_count=2)
    proc, out, _ = run_client(dne_bin, tmp_path, server.url, model="m-faulty", retries=4)
    assert proc.returncode == 0, proc.stderr
    prov = provenance(out)
    assert prov["api_retries"] >= 2 and prov["api_model"] == "m-faulty"


def test_persistent_500s_fail_after_the_retries(dne_bin, reference_server, tmp_path):
    server = reference_server(fault="status500", fault_count=0)
    proc, out, seconds = run_client(dne_bin, tmp_path, server.url, model="m-faulty", retries=2)
    assert proc.returncode == 2, proc.stderr
    row = only_row(out)
    assert failed_with(row, ["500"]), row
    assert seconds < 60


def test_throttling_is_retried_after_retry_after(dne_bin, reference_server, tmp_path):
    server = reference_server(fault="throttle", fault_count=2)
    proc, out, seconds = run_client(dne_bin, tmp_path, server.url, model="m-faulty", retries=4)
    assert proc.returncode == 0, proc.stderr
    assert provenance(out)["api_retries"] >= 2
    assert seconds >= 2.0  # two answers of Retry-After: 1


def test_unreachable_server_fails_fast_with_a_connect_error(dne_bin, tmp_path):
    url = f"http://127.0.0.1:{closed_port()}"
    proc, out, seconds = run_client(dne_bin, tmp_path, url, retries=1, timeout_s=2)
    assert proc.returncode == 2, proc.stderr
    row = only_row(out)
    assert failed_with(row, ["connect"]), row
    assert seconds < 30
