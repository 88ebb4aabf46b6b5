"""`dne serve` and the fm.kind = "remote" client against hostile peers (issue 25).

Every case here was a finding of an audit of the cpp-httplib server (one request could crash
it, idle or slow connections starved it, bodies were read and inflated before the token was
checked, ...). The server under test listens on 127.0.0.1 only; every loop is bounded in count
and time; raw sockets are used where a well-behaved HTTP library would refuse to misbehave.
The served model is a small TorchScript module made here with torch.
"""
import functools
import gzip
import json
import os
import random
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch


from oip_reference_server import ServerProcess, infer_body, oip_request
from served_models import Lin

H, D = 32, 8
TOKEN = "tok-HOSTILE-4321"
SERVE_URL = r"listening on (http://[0-9.]+:\d+)"
INFER = "/v2/models/dne/infer"


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    where = tmp_path_factory.mktemp("hostile_model")
    torch.jit.script(Lin(H, D, seed=5).eval()).save(str(where / "lin.pt"))
    path = where / "serve.toml"
    path.write_text(f'[data]\nimage_size = {H}\n[fm]\nkind = "torchscript"\ntorchscript = "{where / "lin.pt"}"\n')
    return path


class Serve:
    """`dne serve` on a free port; .host, .port, .url, .pid; stop() sends SIGTERM and returns (code, seconds)."""

    def __init__(self, dne_bin, config, *args, env=None):
        full_env = dict(os.environ, **(env or {}))
        self.server = ServerProcess([dne_bin, "serve", "--config", config, "--port", "0", *map(str, args)], SERVE_URL,
                                    env=full_env, timeout=120)  # a loaded CI machine can take 20 s to start it
        self.url = self.server.url
        self.host, port = self.url.split("//")[1].split(":")
        self.port = int(port)
        self.pid = self.server.proc.pid

    def alive(self):
        return self.server.proc.poll() is None

    def stop(self):
        start = time.monotonic()
        code = self.server.stop(timeout=20)
        return code, time.monotonic() - start

    def peak_rss_mb(self):
        text = Path(f"/proc/{self.pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", text).group(1)) / 1024

    def stats(self):
        return json.loads(oip_request(self.url + "/dne/stats", timeout=5)[2])


@pytest.fixture
def serve(dne_bin, config):
    started = []

    def start(*args, env=None):
        s = Serve(dne_bin, config, *args, env=env)
        started.append(s)
        return s
    yield start
    for s in started:
        if s.alive():
            s.stop()


def connect(s, timeout=5.0):
    c = socket.create_connection((s.host, s.port), timeout=timeout)
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return c


def read_response(c, timeout=5.0):
    """(status or None if the connection closed without one, the raw bytes read) until close or timeout."""
    c.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            chunk = c.recv(65536)
            if not chunk:
                break
            data += chunk
            head, sep, rest = data.partition(b"\r\n\r\n")
            if sep:
                m = re.search(rb"content-length:\s*(\d+)", head, re.I)
                if m and len(rest) >= int(m.group(1)):
                    break
    except (socket.timeout, ConnectionResetError):
        pass
    m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    return (int(m.group(1)) if m else None), data


def raw_request(s, data, timeout=5.0):
    with connect(s, timeout) as c:
        try:
            c.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_response(c, timeout)


def post_head(path, length=None, extra=""):
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}"
    if length is not None:
        head += f"Content-Length: {length}\r\n"
    return (head + "\r\n").encode()


def healthy_within(s, seconds=1.0):
    start = time.monotonic()
    status = oip_request(s.url + "/v2/health/live", timeout=seconds + 1)[0]
    return status == 200 and time.monotonic() - start < seconds


def valid_json_body(b=1, seed=0):
    return infer_body(np.random.default_rng(seed).random((b, 1, H, H), dtype=np.float32))[0]


# --- one request that used to crash the server --------------------------------------------------

@pytest.mark.parametrize("where", ["shape", "data", "id"])
def test_deeply_nested_json_is_a_400_not_a_crash(serve, where):
    """A 200 KB body nested 100,000 deep (SIGSEGV in the JSON library before, in the shape's error text)."""
    s = serve()
    deep = "[" * 100_000 + "]" * 100_000
    tensor = {"shape": '"shape":' + deep + ',"data":[0]', "data": '"shape":[1,1,32,32],"data":' + deep,
              "id": '"shape":[1,1,32,32],"data":[0]'}[where]
    prefix = '{"id":' + deep + "," if where == "id" else "{"
    body = (prefix + '"inputs":[{"name":"images","datatype":"FP32",' + tensor + "}]}").encode()
    status, headers, reply = oip_request(s.url + INFER, body, {"Content-Type": "application/json"}, timeout=10)
    assert status == 400, reply[:300]
    assert "nested deeper than 32" in json.loads(reply)["error"]
    assert s.alive() and healthy_within(s)


# --- bodies are bounded and never inflated ---------------------------------------------------------

def test_chunked_body_over_the_limit_is_413_and_bounded(serve):
    """A chunked body is held to --max-request-mb like a declared one (before: 200 MB read, RSS 892 MB)."""
    s = serve("--max-request-mb", 1)
    before = s.peak_rss_mb()
    chunk = b"7" * 65536
    sent, status = 0, None
    with connect(s) as c:
        c.sendall(post_head(INFER, extra="Transfer-Encoding: chunked\r\n"))
        try:
            while sent < 200 << 20:
                c.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                sent += len(chunk)
                if select.select([c], [], [], 0)[0]:
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass
        status, data = read_response(c)
    assert status == 413, data[:300]
    assert sent < 8 << 20, f"the server read {sent >> 20} MiB of a chunked body before refusing it"
    assert s.peak_rss_mb() - before < 32
    assert healthy_within(s)


def test_compressed_body_is_415_and_never_inflated(serve):
    """A 300 KB gzip body that inflates to 300 MB (before: inflated before the token check, RSS 1.4 GB)."""
    s = serve("--max-request-mb", 1)
    bomb = gzip.compress(b"\0" * (300 << 20), compresslevel=9)
    assert len(bomb) < 1 << 20
    before = s.peak_rss_mb()
    status, data = raw_request(s, post_head(INFER, len(bomb), "Content-Encoding: gzip\r\n") + bomb)
    assert status == 415, data[:300]
    assert b"never inflates" in data
    assert s.peak_rss_mb() - before < 32
    assert healthy_within(s)


def test_token_is_checked_before_the_body_is_read(serve):
    """An unauthenticated request is answered from its header; its body is never read."""
    s = serve("--token-env", "HOSTILE_TOKEN", "--max-request-mb", 4, env={"HOSTILE_TOKEN": TOKEN})
    with connect(s) as c:
        start = time.monotonic()
        c.sendall(post_head(INFER, 3_000_000))  # the header only: a 3 MB body announced, none sent
        status, data = read_response(c, timeout=5)
        assert status == 401, data[:300]
        assert time.monotonic() - start < 1.0
        assert b"connection: close" in data.lower()
    with connect(s) as c:  # a wrong token of the right length is refused the same way
        c.sendall(post_head(INFER, 10, "Authorization: Bearer " + "x" * len(TOKEN) + "\r\n"))
        assert read_response(c)[0] == 401
    body = valid_json_body()
    status, _, reply = oip_request(s.url + INFER, body, {"Content-Type": "application/json",
                                                         "Authorization": f"Bearer {TOKEN}"})
    assert status == 200, reply[:300]


def test_too_many_bodies_in_flight_is_503(serve):
    """Bodies being read count against --max-inflight-mb: a client that announces many large
    bodies and sends none cannot make the server reserve their memory."""
    s = serve("--max-request-mb", 4, "--max-inflight-mb", 8)
    held = []
    try:
        for _ in range(2):  # 2 x 4 MiB announced: the budget is used up
            c = connect(s)
            c.sendall(post_head(INFER, 4 << 20))
            held.append(c)
        time.sleep(0.2)
        status, data = raw_request(s, post_head(INFER, 4 << 20))
        assert status == 503, data[:300]
        assert re.search(rb"retry-after: 1", data, re.I)
        assert healthy_within(s)  # requests without a body still pass
    finally:
        for c in held:
            c.close()
    time.sleep(0.3)
    body = valid_json_body()
    assert oip_request(s.url + INFER, body, {"Content-Type": "application/json"})[0] == 200


# --- connections cannot starve the server ----------------------------------------------------------

def test_idle_and_slow_connections_do_not_starve_and_sigterm_is_prompt(serve):
    """200 idle and 200 slow connections (before: 8 idle ones blocked every request for 60 s, and
    SIGTERM with idle connections took 57.6 s)."""
    s = serve()
    idle, slow = [], []
    stop = threading.Event()
    try:
        for _ in range(200):
            idle.append(connect(s))
        for i in range(200):
            c = connect(s)
            c.sendall(post_head(INFER, 100_000) if i % 2 else b"GET /v2/health/li")  # a body, or a header, trickled
            slow.append(c)

        def trickle():
            while not stop.wait(0.5):
                for c in slow:
                    try:
                        c.send(b"v")
                    except OSError:
                        pass
        feeder = threading.Thread(target=trickle, daemon=True)
        feeder.start()
        time.sleep(0.5)
        body = valid_json_body(4)
        for _ in range(5):
            start = time.monotonic()
            status = oip_request(s.url + INFER, body, {"Content-Type": "application/json"}, timeout=5)[0]
            assert status == 200 and time.monotonic() - start < 1.0, f"{status} after {time.monotonic() - start:.2f} s"
            assert healthy_within(s)
        code, seconds = s.stop()
        assert code == 0 and seconds < 5.0, f"exit {code} after {seconds:.1f} s"
    finally:
        stop.set()
        for c in idle + slow:
            c.close()


def test_header_and_body_deadlines_close_slow_clients(serve):
    """A connection that sends nothing, one that trickles its header, and one whose body is slower
    than the minimum rate are closed by the server's deadlines."""
    s = serve("--header-timeout", 1, "--body-stall", 1, "--min-body-kbps", 1)
    with connect(s) as quiet, connect(s) as header, connect(s) as body:
        body.sendall(post_head(INFER, 100_000))
        start = time.monotonic()
        closed = {}
        while len(closed) < 3 and time.monotonic() - start < 6:
            for name, c in (("quiet", quiet), ("header", header), ("body", body)):
                if name in closed:
                    continue
                try:
                    if name != "quiet":
                        c.send(b"G" if name == "header" else b"x")
                    c.settimeout(0.3)
                    data = c.recv(4096)
                    if not data or data.startswith(b"HTTP/1.1 408"):
                        closed[name] = (time.monotonic() - start, data[:12])
                except socket.timeout:
                    pass
                except (BrokenPipeError, ConnectionResetError):
                    closed[name] = (time.monotonic() - start, b"")
        assert set(closed) == {"quiet", "header", "body"}, closed
        assert closed["quiet"][0] < 3 and closed["header"][0] < 3, closed
        assert closed["body"][1].startswith(b"HTTP/1.1 408"), closed  # too slow: answered, then closed
    assert healthy_within(s)


def test_connections_over_the_cap_get_a_fast_503(serve):
    s = serve("--max-connections", 10)
    held = [connect(s) for _ in range(10)]
    try:
        time.sleep(0.2)
        start = time.monotonic()
        status, data = raw_request(s, b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == 503 and time.monotonic() - start < 1.0, data[:200]
        assert re.search(rb"retry-after: 1", data, re.I)
    finally:
        for c in held:
            c.close()
    time.sleep(0.3)
    assert healthy_within(s)
    assert s.stats()["connections_refused"] >= 1


# --- inputs, the token and the access log -----------------------------------------------------------

def test_non_finite_and_out_of_range_inputs_are_400(serve):
    """Before: 500 "model returned non-finite embeddings", which the client retries."""
    s = serve()
    x = np.zeros((1, 1, H, H), np.float32)
    for bad, text in [(np.nan, "element 5 is not finite"), (np.inf, "element 5 is not finite"),
                      (3e38, "element 5 is 3e+38"), (-2000.0, "element 5 is -2000")]:
        x.flat[5] = bad
        body, headers = infer_body(x, binary_input=True)
        status, _, reply = oip_request(s.url + INFER, body, headers)
        assert status == 400, reply[:300]
        assert text in json.loads(reply)["error"], reply
    body = b'{"inputs":[{"name":"images","datatype":"FP32","shape":[1,1,32,32],"data":[3e38' + b",0" * 1023 + b"]}]}"
    status, _, reply = oip_request(s.url + INFER, body, {"Content-Type": "application/json"})
    assert status == 400 and "--max-abs-input" in json.loads(reply)["error"]


def test_access_log_cannot_be_forged_and_counts_failed_writes(serve, tmp_path):
    log = tmp_path / "access.log"
    s = serve("--access-log", log)
    assert raw_request(s, b"GET /v2/health/live%0A2026-01-01T00:00:00Z%20forged HTTP/1.1\r\nHost: x\r\n\r\n")[0] == 404
    assert raw_request(s, b"GET /v2/health/live\x1b[2J HTTP/1.1\r\nHost: x\r\n\r\n")[0] == 400
    assert oip_request(s.url + "/v2/health/live")[0] == 200
    # A request's line is written when the server's write of the reply completes, which can be
    # just after the client has read it: wait for the third line (a busy machine showed the race).
    deadline = time.time() + 10
    while len(log.read_text(errors="replace").splitlines()) < 3 and time.time() < deadline:
        time.sleep(0.05)
    lines = log.read_text(errors="replace").splitlines()
    assert len(lines) == 3, lines
    assert all(re.match(r"\d{4}-\d\d-\d\dT\S+Z 127\.0\.0\.1 \S+ \S+ \d{3} in=", line) for line in lines), lines
    s.stop()

    full = serve("--access-log", "/dev/full")  # every write fails with ENOSPC
    for _ in range(5):
        assert oip_request(full.url + "/v2/health/live")[0] == 200
    assert full.stats()["log_failures"] == 5
    full.stop()
    reports = [line for line in full.server.stderr if "access-log" in line]
    assert len(reports) == 1 and "log_failures" in reports[0], full.server.stderr


# --- fuzz ----------------------------------------------------------------------------------------------

def mutations(rng, n):
    """n hostile requests as raw bytes: JSON and binary infer bodies with random nesting, sizes,
    types, truncations, byte flips and header lies, plus broken request lines."""
    x = np.random.default_rng(1).random((2, 1, H, H), dtype=np.float32)
    json_body = infer_body(x)[0]
    binary_body, binary_headers = infer_body(x, binary_input=True)
    header_length = int(binary_headers["Inference-Header-Content-Length"])
    values = ['null', 'true', '"s"', '{}', '[]', '-1', '1e400', '3e38', '"' + "q" * 5000 + '"', '[' * 40 + ']' * 40]
    for i in range(n):
        kind = rng.randrange(9)
        headers = {"Content-Type": "application/json"}
        if kind == 0:  # random nesting around the shape or the data
            depth = rng.choice([1, 5, 31, 33, 500, 20000])
            key = rng.choice(["shape", "data", "inputs"])
            text = json_body.decode()
            at = text.index(f'"{key}":') + len(key) + 3
            end = text.index("]", at) + 1 if key != "inputs" else len(text) - 1
            body = (text[:at] + "[" * depth + text[at:end] + "]" * depth + text[end:]).encode()
        elif kind == 1:  # a field of another type
            obj = json.loads(json_body)
            field = rng.choice(["name", "shape", "datatype", "data", "inputs", "id", "outputs", "parameters"])
            target = obj if field in ("inputs", "id", "outputs", "parameters") else obj["inputs"][0]
            target[field] = json.loads(rng.choice(values).replace("1e400", "1e30"))
            body = json.dumps(obj).encode()
            if rng.random() < 0.3:
                body = body.replace(b"1e+30", b"1e400")
        elif kind == 2:  # truncated
            source = rng.choice([json_body, binary_body])
            body = source[:rng.randrange(len(source))]
            if source is binary_body:
                headers = dict(binary_headers)
        elif kind == 3:  # byte flips
            body = bytearray(rng.choice([json_body, binary_body]))
            for _ in range(rng.randrange(1, 20)):
                body[rng.randrange(len(body))] = rng.randrange(256)
            body = bytes(body)
            headers = dict(binary_headers) if rng.random() < 0.5 else headers
        elif kind == 4:  # Inference-Header-Content-Length lies
            body = binary_body
            headers = dict(binary_headers)
            headers["Inference-Header-Content-Length"] = rng.choice(
                ["0", "-1", str(header_length - 1), str(header_length + 1), str(len(body) + 10), "99999999999999999999",
                 "1e3", "", " 12"])
        elif kind == 5:  # shapes and sizes that do not add up
            shape = [rng.choice([0, 1, 2, 257, 2**31, 2**62, -1]), 1, rng.choice([H, 31, 0]), H]
            obj = json.loads(json_body)
            obj["inputs"][0]["shape"] = shape
            body = json.dumps(obj).encode()
        elif kind == 6:  # binary_data_size lies
            obj = json.loads(binary_body[:header_length])
            obj["inputs"][0]["parameters"]["binary_data_size"] = rng.choice([0, 4, -4, 2**40, "8", None])
            head = json.dumps(obj).encode()
            body = head + binary_body[header_length:]
            headers = dict(binary_headers, **{"Inference-Header-Content-Length": str(len(head))})
        elif kind == 7:  # a broken request line or header
            yield rng.choice([b"GET\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", b"GET / HTTP/9.9\r\n\r\n",
                              b"POST " + INFER.encode() + b" HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                              b"POST " + INFER.encode() + b" HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nabcdef",
                              b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n",
                              b"GET / HTTP/1.1\r\nX: " + b"b" * 20000 + b"\r\n\r\n",
                              b"POST " + INFER.encode() + b" HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"]), True
            continue
        elif rng.random() < 0.02:  # a Content-Length longer than the body: the server waits, then gives up
            body = json_body
            yield post_head(INFER, len(body) + rng.randrange(1, 1000)) + body, True
            continue
        else:  # a Content-Length shorter than the body: the rest is parsed as the next request
            body = json_body
            head = post_head(INFER, rng.randrange(1, len(body))).decode()
            yield head.encode() + body, True
            continue
        head = f"POST {INFER} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        yield (head + "\r\n").encode() + body, False


def test_fuzz_2000_requests_no_crash_no_hang_bounded_memory(serve):
    s = serve("--max-request-mb", 1, "--body-stall", 0.5, "--header-timeout", 2)
    oip_request(s.url + INFER, valid_json_body(), {"Content-Type": "application/json"})  # warm the model
    before = s.peak_rss_mb()
    rng = random.Random(25)
    statuses = {}
    start = time.monotonic()
    for i, (data, any_answer) in enumerate(mutations(rng, 2000)):
        status, reply = raw_request(s, data, timeout=5)
        statuses[status] = statuses.get(status, 0) + 1
        if not any_answer:
            assert status in (200, 400, 413), (status, data[:200], reply[:300])
        if i % 100 == 99:
            assert s.alive(), f"the server died after request {i}"
            assert healthy_within(s), f"a normal request took over 1 s after request {i}"
    assert s.alive()
    grown = s.peak_rss_mb() - before
    print(f"fuzz: {sum(statuses.values())} requests in {time.monotonic() - start:.1f} s, statuses {statuses}, "
          f"peak RSS grew {grown:.1f} MiB", file=sys.stderr)
    assert grown < 64, f"peak RSS grew by {grown:.0f} MiB"
    assert statuses.get(400, 0) > 1000


# --- a hostile server against the client -------------------------------------------------------------

@functools.cache
def gzip_bomb():
    """600 MB of zeros, gzip-compressed to about 600 KB (made once, only by the test that uses it)."""
    return gzip.compress(b"\0" * (600 << 20), compresslevel=9)


class Hostile(BaseHTTPRequestHandler):
    """Health and metadata as expected, except as `mode` says; every infer answer is hostile."""
    mode = "deep_metadata"
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, status, body, headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        if not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in headers):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path.endswith("/ready") or self.path.endswith("/live"):
            return self.send(200, b'{"ready":true}')
        if self.mode == "deep_metadata":
            shape = "[" * 100_000 + "]" * 100_000
            return self.send(200, ('{"name":"m","inputs":[{"name":"images","datatype":"FP32","shape":' + shape +
                                   '}],"outputs":[]}').encode())
        self.send(200, json.dumps({"name": "m", "versions": ["1"], "platform": "x",
                                   "inputs": [{"name": "images", "datatype": "FP32", "shape": [-1, 1, H, H]}],
                                   "outputs": [{"name": "embeddings", "datatype": "FP32", "shape": [-1, D]}]}).encode())

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.mode == "gzip":  # 600 MB of zeros, 600 KB on the wire
            return self.send(200, gzip_bomb(),
                             [("Content-Encoding", "gzip"), ("Content-Type", "application/json")])
        if self.mode == "huge":  # announces 4 GB and streams until the client hangs up
            self.send_response(200)
            self.send_header("Content-Length", str(4 << 30))
            self.end_headers()
        else:  # endless chunks
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
        block = b"9" * 65536
        try:
            for _ in range(4 << 30 >> 16):
                self.wfile.write(block if self.mode == "huge" else b"10000\r\n" + block + b"\r\n")
        except OSError:
            pass


@pytest.mark.parametrize("mode,keyword", [("deep_metadata", "nested deeper than 32"),
                                          ("gzip", "breaks the protocol"),
                                          ("huge", "larger than"), ("chunked", "larger than")])
def test_the_client_survives_a_hostile_server(dne_bin, tmp_path, mode, keyword):
    """Before: the deep metadata crashed `dne run`, a gzip answer was inflated, and an endless
    answer was read until memory or the timeout ran out."""
    handler = type("H", (Hostile,), {"mode": mode})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        out = tmp_path / "run"
        config = tmp_path / "remote.toml"
        config.write_text("\n".join([
            "[data]", f"image_size = {H}", "n_train = 40", "n_test = 20", "[fm]", 'kind = "remote"', "[api]",
            f'url = "http://127.0.0.1:{server.server_address[1]}"', 'model = "m"', "retries = 0", "timeout_s = 10",
            "[dne]", 'method = "none"', "[sweep]", "seeds = [0]", "[output]", f'dir = "{out}"']) + "\n")
        start = time.monotonic()
        proc, peak_mb = run_measured(dne_bin, "run", "--config", config)
        took = time.monotonic() - start
    finally:
        server.shutdown()
        server.server_close()
    text = proc.stdout + proc.stderr
    assert proc.returncode not in (0, -signal.SIGSEGV, -signal.SIGABRT, -signal.SIGKILL), text[-2000:]
    assert keyword in text, text[-2000:]
    assert took < 60
    print(f"{mode}: dne run failed cleanly in {took:.1f} s, peak RSS {peak_mb:.0f} MiB", file=sys.stderr)
    assert peak_mb < 400, f"dne run peaked at {peak_mb:.0f} MiB: the answer was inflated or buffered"


def run_measured(dne_bin, *args):
    """`dne ARGS` as the only child of a fresh Python process: (CompletedProcess, its peak RSS in MiB)."""
    probe = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:]);"
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(p.returncode)")
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    proc = subprocess.run([sys.executable, "-c", probe, str(dne_bin), *map(str, args)], capture_output=True, text=True,
                          timeout=120, env=env)
    *rest, peak_kb = proc.stderr.rstrip("\n").split("\n")
    proc.stderr = "\n".join(rest)
    return proc, int(peak_kb) / 1024
