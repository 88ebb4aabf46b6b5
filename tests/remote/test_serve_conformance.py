"""`dne serve` (the C++ Open Inference Protocol server) against an independent Python client.

The client speaks the protocol through urllib.request and json only (tests/pylib/
oip_reference_server.py's oip_request / infer_body / infer_result, written from the protocol
text and sharing no code with the C++ side). The served model is a TorchScript module made here
with torch, so the expected embeddings are torch's own output of the same module; binary and
JSON answers must agree bit for bit. Also checked from outside: metadata, every error status with
its {"error"} body, the bearer token, rate limiting, injected failures and latency, the access
log, /dne/stats and a graceful stop on SIGTERM / SIGINT.
"""
import json
import re
import signal
import threading
import time

import numpy as np
import pytest
import torch

from oip_reference_server import infer_body, infer_result, oip_request
from served_models import Lin

H, D = 32, 8
TOKEN = "tok-SERVE-5678"


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """(module, config path) with [data] image_size = H and the module as the FM."""
    where = tmp_path_factory.mktemp("serve_model")
    module = torch.jit.script(Lin(H, D, seed=5).eval())
    module.save(str(where / "lin.pt"))
    config = where / "serve.toml"
    config.write_text(f'[data]\nimage_size = {H}\n[fm]\nkind = "torchscript"\ntorchscript = "{where / "lin.pt"}"\n')
    return module, config


@pytest.fixture(scope="module")
def served(model, dne_serve_shared, tmp_path_factory):
    """One server shared by the module's plain tests: (ServerProcess, access log path)."""
    log = tmp_path_factory.mktemp("serve_log") / "access.log"
    server = dne_serve_shared(model[1], "--max-batch", 4, "--max-request-mb", 1, "--access-log", log)
    return server, log


def images(b, seed=0):
    return np.random.default_rng(seed).random((b, 1, H, H), dtype=np.float32)


def expected(module, x):
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


def infer(url, x, model="dne", headers=None, **encoding):
    """POST x to MODEL's infer endpoint: (status, headers, body)."""
    body, h = infer_body(x, **encoding)
    return oip_request(f"{url}/v2/models/{model}/infer", body, {**h, **(headers or {})})


def assert_error(status, reply, want):
    assert status == want, (status, reply[:300])
    message = json.loads(reply)["error"]
    assert isinstance(message, str) and message


def test_health_and_server_metadata(served):
    url = served[0].url
    for path in ("/v2/health/live", "/v2/health/ready", "/v2/models/dne/ready", "/v2/models/dne/versions/1/ready"):
        assert oip_request(url + path)[0] == 200, path
    status, _, reply = oip_request(url + "/v2")
    meta = json.loads(reply)
    assert status == 200 and isinstance(meta["name"], str) and isinstance(meta["version"], str)
    assert "binary_tensor_data" in meta["extensions"]


@pytest.mark.parametrize("path", ["/v2/models/dne", "/v2/models/dne/versions/1"])
def test_model_metadata(served, path):
    status, _, reply = oip_request(served[0].url + path)
    meta = json.loads(reply)
    assert status == 200 and meta["name"] == "dne" and "1" in meta["versions"] and isinstance(meta["platform"], str)
    tensors = lambda ts: [{k: t[k] for k in ("name", "datatype", "shape")} for t in ts]  # noqa: E731
    assert tensors(meta["inputs"]) == [{"name": "images", "datatype": "FP32", "shape": [-1, 1, H, H]}]
    assert tensors(meta["outputs"]) == [{"name": "embeddings", "datatype": "FP32", "shape": [-1, D]}]


def test_json_infer_is_torchs_output_and_echoes_the_id(served, model):
    x = images(3)
    status, headers, reply = infer(served[0].url, x, request_id="req-42")
    assert status == 200, reply
    response, z, came_binary = infer_result(headers, reply)
    assert not came_binary and response["model_name"] == "dne" and response["id"] == "req-42"
    assert response.get("model_version", "1") == "1"
    [out] = response["outputs"]
    assert out["name"] == "embeddings" and out["datatype"] == "FP32" and out["shape"] == [3, D]
    np.testing.assert_allclose(z, expected(model[0], x), rtol=0, atol=1e-5)
    status, headers, reply = infer(served[0].url, x, nested=True)  # nested data: the same row-major tensor
    assert status == 200, reply
    assert infer_result(headers, reply)[1].tobytes() == z.tobytes()
    assert "id" not in infer_result(headers, reply)[0]


def test_versioned_infer(served):
    x = images(2, seed=1)
    body, h = infer_body(x)
    status, headers, reply = oip_request(served[0].url + "/v2/models/dne/versions/1/infer", body, h)
    assert status == 200, reply
    assert infer_result(headers, reply)[1].tobytes() == infer_result(*infer(served[0].url, x)[1:])[1].tobytes()


@pytest.mark.parametrize("binary_input, binary_output", [(True, True), (False, "all"), (True, False)],
                         ids=["binary-both", "json-in-binary-out-all", "binary-in-json-out"])
def test_binary_tensors_carry_the_same_bits_as_json(served, binary_input, binary_output):
    x = images(3, seed=2)
    status, headers, reply = infer(served[0].url, x)
    assert status == 200, reply
    reference = infer_result(headers, reply)[1]  # JSON floats read as float64, then float32
    status, headers, reply = infer(served[0].url, x, binary_input=binary_input, binary_output=binary_output)
    assert status == 200, reply
    if binary_output:
        assert int(headers["Inference-Header-Content-Length"]) < len(reply)
        assert headers["Content-Length"] is None or int(headers["Content-Length"]) == len(reply)
    response, z, came_binary = infer_result(headers, reply)
    assert came_binary == bool(binary_output)
    if came_binary:
        out = response["outputs"][0]
        assert "data" not in out and out["parameters"]["binary_data_size"] == 3 * D * 4
    assert z.dtype == np.float32 and z.tobytes() == reference.tobytes()


def test_unknown_model_or_version_is_404(served):
    url = served[0].url
    assert_error(*infer(url, images(1), model="nope")[::2], 404)
    assert_error(*oip_request(url + "/v2/models/nope")[::2], 404)
    assert_error(*oip_request(url + "/v2/models/dne/versions/9")[::2], 404)
    body, h = infer_body(images(1))
    assert_error(*oip_request(url + "/v2/models/dne/versions/9/infer", body, h)[::2], 404)


def bad_bodies():
    n = H * H
    tensor = {"name": "images", "shape": [1, 1, H, H], "datatype": "FP32", "data": [0.5] * n}
    yield "garbage", b"{this is not json"
    yield "no inputs", b'{"outputs": []}'
    yield "wrong datatype", {"inputs": [{**tensor, "datatype": "FP64"}]}
    yield "wrong name", {"inputs": [{**tensor, "name": "pixels"}]}
    yield "wrong shape", {"inputs": [{**tensor, "shape": [1, 1, H // 2, H // 2], "data": [0.5] * (n // 4)}]}
    yield "wrong rank", {"inputs": [{**tensor, "shape": [1, H, H]}]}
    yield "short data", {"inputs": [{**tensor, "data": [0.5] * (n - 1)}]}
    yield "long data", {"inputs": [{**tensor, "data": [0.5] * (n + 1)}]}


@pytest.mark.parametrize("body", [b for _, b in bad_bodies()], ids=[name for name, _ in bad_bodies()])
def test_bad_requests_are_400_with_an_error(served, body):
    status, _, reply = oip_request(served[0].url + "/v2/models/dne/infer", body,
                                   {"Content-Type": "application/json"})
    assert_error(status, reply, 400)


def test_bad_binary_sizes_are_400(served):
    body, h = infer_body(images(2), binary_input=True)
    assert_error(*oip_request(served[0].url + "/v2/models/dne/infer", body[:-4], h)[::2], 400)  # 4 bytes short
    h = {**h, "Inference-Header-Content-Length": str(len(body) + 10)}  # longer than the body
    assert_error(*oip_request(served[0].url + "/v2/models/dne/infer", body, h)[::2], 400)


def test_batch_over_max_batch_is_400(served):
    assert infer(served[0].url, images(4))[0] == 200  # --max-batch 4
    assert_error(*infer(served[0].url, images(5))[::2], 400)


def test_body_over_max_request_mb_is_413(served):
    # 1.5 MB (over 1 MiB and 1e6 bytes) of valid JSON with a small tensor: only the size is wrong.
    body, h = infer_body(images(1), request_id="x" * 1_500_000)
    try:
        status = oip_request(served[0].url + "/v2/models/dne/infer", body, h)[0]
    except OSError as e:
        pytest.fail(f"no 413 answer: the server dropped the connection while the body was sent ({e})")
    assert status == 413
    assert oip_request(served[0].url + "/v2/health/ready")[0] == 200  # still serving


def test_access_log_has_a_line_per_request(served):
    server, log = served
    assert infer(server.url, images(1))[0] == 200
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = log.read_text().splitlines() if log.exists() else []
        if any("POST" in line and "/infer" in line and "200" in line for line in lines):
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"no 'POST .../infer 200' line in the access log: {lines[-5:]}")


def test_stats_count_requests_images_and_errors(model, dne_serve):
    url = dne_serve(model[1]).url

    def stats():
        status, _, reply = oip_request(url + "/dne/stats")
        assert status == 200
        s = json.loads(reply)
        assert all(type(s[k]) is int for k in ("requests", "images", "errors")), s
        return s

    before = stats()
    assert infer(url, images(3))[0] == 200 and infer(url, images(2))[0] == 200
    middle = stats()
    assert middle["images"] - before["images"] == 5 and middle["requests"] - before["requests"] >= 2
    assert oip_request(url + "/v2/models/dne/infer", b"{", {"Content-Type": "application/json"})[0] == 400
    after = stats()
    assert after["errors"] - middle["errors"] >= 1 and after["images"] == middle["images"]
    assert after["requests"] > middle["requests"]


def test_bearer_token(model, dne_serve, tmp_path):
    log = tmp_path / "access.log"
    server = dne_serve(model[1], "--token-env", "DNE_SERVE_TEST_TOKEN", "--access-log", log,
                       env={"DNE_SERVE_TEST_TOKEN": TOKEN})
    url, x = server.url, images(2)
    for path in ("/v2/health/live", "/v2/health/ready"):
        assert oip_request(url + path)[0] == 200, path  # health stays open
    for headers in ({}, {"Authorization": "Bearer tok-WRONG"}, {"Authorization": TOKEN}):
        assert_error(*oip_request(url + "/v2/models/dne", headers=headers)[::2], 401)
        assert_error(*infer(url, x, headers=headers)[::2], 401)
    good = {"Authorization": f"Bearer {TOKEN}"}
    assert oip_request(url + "/v2/models/dne", headers=good)[0] == 200
    assert infer(url, x, headers=good)[0] == 200
    assert server.stop() == 0
    written = "\n".join(server.stdout + server.stderr) + (log.read_text() if log.exists() else "")
    assert TOKEN not in written


def test_rate_limit_answers_429_with_retry_after(model, dne_serve):
    url = dne_serve(model[1], "--rate-limit", 2).url
    x = images(1)
    answers = [infer(url, x) for _ in range(10)]
    statuses = [a[0] for a in answers]
    assert statuses[0] == 200 and set(statuses) <= {200, 429}, statuses
    limited = [a for a in answers if a[0] == 429]
    assert limited, statuses
    for _, headers, reply in limited:
        assert re.fullmatch(r"\d+", (headers["Retry-After"] or "").strip()), headers["Retry-After"]
        assert_error(429, reply, 429)


def test_failure_rate_1_answers_500(model, dne_serve):
    url = dne_serve(model[1], "--failure-rate", 1).url
    assert_error(*infer(url, images(1))[::2], 500)
    assert oip_request(url + "/v2/health/ready")[0] == 200


def test_latency_delays_each_answer_concurrently(model, dne_serve):
    url = dne_serve(model[1], "--latency-ms", 300).url
    start = time.monotonic()
    assert infer(url, images(1))[0] == 200
    assert time.monotonic() - start >= 0.3
    statuses = []
    threads = [threading.Thread(target=lambda: statuses.append(infer(url, images(1))[0])) for _ in range(4)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.monotonic() - start
    assert statuses == [200] * 4 and 0.3 <= seconds < 1.1  # serially it would take >= 1.2 s


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_gracefully(model, dne_serve, sig):
    server = dne_serve(model[1])
    assert infer(server.url, images(2))[0] == 200
    start = time.monotonic()
    assert server.stop(sig, timeout=15) == 0
    assert time.monotonic() - start < 10
    last = [line for line in server.stdout if line.strip()][-1]
    assert last.startswith("dne serve: stopped") and re.search(r"\d", last), server.stdout
