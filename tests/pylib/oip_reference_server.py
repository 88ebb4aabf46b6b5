#!/usr/bin/env python3
"""An independent, minimal Open Inference Protocol (KServe "V2" REST) server, and a tiny client.

The server is the reference that the C++ client behind fm.kind = "remote" is tested against
(tests/remote/test_client_conformance.py). It is written from the protocol text
(docs/notes/open-inference-protocol.md, sections 1 and 2) and shares no code with the C++ side:
Python's http.server (HTTP/1.1 with keep-alive, a thread per connection), json and NumPy.
Its model is a fixed random projection in float32: z = x.reshape(B, H*W) @ W, with
W = N(0, 1) / sqrt(H*W) drawn by np.random.default_rng(seed); input "images" FP32 [-1, 1, H, W],
output "embeddings" FP32 [-1, D]. JSON floats are exact for float32 (the shortest repr of the
float64 holding the float32 value).

It serves two models, version "1": NAME (--model-name, always healthy) and NAME-faulty, whose
infer requests (metadata, for `wronginput`) misbehave as --fault says:
  garbage     200 with the truncated body  {"outputs": [
  shape       D + 1 output columns
  nan         the first output element NaN: the bare NaN token in JSON, NaN bytes in binary
  status500   500 for the first --fault-count infer requests (<= 0: all of them), then correct
  throttle    429 + Retry-After: 1 for the first --fault-count infer requests (<= 0: all of them)
  slow        a 30 s sleep before a correct answer
  wronginput  the model metadata declares input shape [-1, 1, H+1, W+1]
--record DIR writes each correct 200 answer (never a faulted one) to DIR/<n>.npz: `inputs`
(B,1,H,W) and `outputs` (B,D) float32, and `model`, `binary_input`, `binary_output`.
--token-env VAR: every path but /v2/health/* needs `Authorization: Bearer $VAR` (else 401).

Run:  python3 tests/pylib/oip_reference_server.py --port 0 --image-size 32 --dim 16
The first stdout line is `listening on http://127.0.0.1:PORT`; SIGTERM stops it.
From a test: start_reference_server(...) -> ServerProcess (unpacks as proc, url); .stop().
"""
import argparse
import hmac
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

VERSION = "1"
SLOW_S = 30.0
MAX_BODY = 1 << 30
FAULTS = ("garbage", "shape", "nan", "status500", "throttle", "slow", "wronginput")
MODEL_PATH = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?(?:/(ready|infer))?$")


class BadRequest(Exception):
    """A request that breaks the protocol, answered with `status` and {"error": message}."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


def _no_constants(name):
    raise ValueError(f"{name} is not JSON")


def _flatten(value, out):
    """Row-major flattening of (possibly nested) JSON number arrays; the protocol allows both."""
    if isinstance(value, list):
        for v in value:
            _flatten(v, out)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        out.append(value)
    else:
        raise BadRequest(f"tensor data element {value!r} is not a number")


class Reference:
    """The models, the fault state and the recorder, shared by all handler threads."""

    def __init__(self, args):
        self.args, self.name, self.h, self.d = args, args.model_name, args.image_size, args.dim
        pixels = self.h * self.h
        w = np.random.default_rng(args.seed).standard_normal((pixels, self.d)) / np.sqrt(pixels)
        self.w = w.astype(np.float32)
        self.w_wide = np.hstack([self.w, self.w[:, :1]])  # the `shape` fault: one column too many
        self.token = None
        if args.token_env:
            self.token = os.environ.get(args.token_env)
            if not self.token:
                sys.exit(f"oip_reference_server: --token-env {args.token_env}: the variable is not set")
        self.lock = threading.Lock()
        self.faulty_infers = self.recorded = 0

    def metadata(self, name):
        side = self.h + 1 if name.endswith("-faulty") and self.args.fault == "wronginput" else self.h
        return {"name": name, "versions": [VERSION], "platform": "numpy_linear",
                "inputs": [{"name": "images", "datatype": "FP32", "shape": [-1, 1, side, side]}],
                "outputs": [{"name": "embeddings", "datatype": "FP32", "shape": [-1, self.d]}]}

    def decode(self, body, header):
        """(images (B,1,H,W) float32, id or None, binary input?, binary output?) of an infer body."""
        json_length = len(body)
        if header is not None:
            if not header.strip().isdigit() or not 0 < int(header) <= len(body):
                raise BadRequest(f"Inference-Header-Content-Length {header!r}: need 0 < n <= {len(body)} "
                                 "(raw binary requests are not supported)")
            json_length = int(header)
        try:
            request = json.loads(body[:json_length].decode("utf-8"), parse_constant=_no_constants)
        except ValueError as e:
            raise BadRequest(f"the request is not valid JSON: {e}") from None
        if not isinstance(request, dict) or not isinstance(request.get("inputs"), list):
            raise BadRequest("the request needs an 'inputs' list")
        if len(request["inputs"]) != 1 or not isinstance(request["inputs"][0], dict):
            raise BadRequest(f"exactly one input ('images') expected, got {len(request['inputs'])}")
        t = request["inputs"][0]
        if t.get("name") != "images":
            raise BadRequest(f"unknown input {t.get('name')!r}; the model's input is 'images'")
        if t.get("datatype") != "FP32":
            raise BadRequest(f"input datatype {t.get('datatype')!r}; 'images' is FP32")
        shape = t.get("shape")
        if (not isinstance(shape, list) or len(shape) != 4 or any(type(s) is not int for s in shape)
                or shape[0] < 1 or shape[1:] != [1, self.h, self.h]):
            raise BadRequest(f"input shape {shape}; 'images' is [-1, 1, {self.h}, {self.h}]")
        count = int(np.prod(shape))
        params = t.get("parameters") or {}
        tail = body[json_length:]
        if isinstance(params, dict) and "binary_data_size" in params:
            if params["binary_data_size"] != 4 * count or len(tail) != 4 * count:
                raise BadRequest(f"binary_data_size {params['binary_data_size']} and {len(tail)} bytes after the "
                                 f"JSON; FP32 {shape} takes {4 * count}")
            x, binary_input = np.frombuffer(tail, "<f4").astype(np.float32), True
        else:
            if tail:
                raise BadRequest(f"{len(tail)} bytes after the JSON, but no input has binary_data_size")
            if "data" not in t:
                raise BadRequest("input 'images' has neither data nor parameters.binary_data_size")
            values = []
            _flatten(t["data"], values)
            if len(values) != count:
                raise BadRequest(f"input data has {len(values)} values; shape {shape} needs {count}")
            try:
                x, binary_input = np.asarray(values, np.float64).astype(np.float32), False
            except OverflowError:
                raise BadRequest("input data holds a number out of range") from None
        top = request.get("parameters") or {}
        binary_output = isinstance(top, dict) and top.get("binary_data_output") is True
        for o in request.get("outputs") or []:
            if not isinstance(o, dict) or o.get("name") != "embeddings":
                raise BadRequest(f"unknown output {o!r}; the model's output is 'embeddings'")
            if isinstance(o.get("parameters"), dict) and "binary_data" in o["parameters"]:
                binary_output = o["parameters"]["binary_data"] is True
        request_id = request.get("id")
        if request_id is not None and not isinstance(request_id, str):
            raise BadRequest("'id' must be a string")
        return x.reshape(shape), request_id, binary_input, binary_output

    def record(self, model, x, z, binary_input, binary_output):
        if not self.args.record:
            return
        with self.lock:
            self.recorded += 1
            path = Path(self.args.record) / f"{self.recorded:06d}.npz"
        part = path.with_suffix(".part")  # complete files only under the .npz name
        with open(part, "wb") as f:
            np.savez(f, inputs=x, outputs=z, model=np.array(model), binary_input=np.array(binary_input),
                     binary_output=np.array(binary_output))
        os.replace(part, path)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every response carries Content-Length
    server_version = "oip-reference/1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def reply(self, status, body=b"", content_type="application/json", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in headers:
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def reply_json(self, status, obj, headers=()):
        self.reply(status, json.dumps(obj).encode(), headers=headers)

    def fail(self, status, message, headers=()):
        self.reply_json(status, {"error": message}, headers)

    def read_body(self):
        """Exactly Content-Length bytes (none without it); a body we will not read closes the connection."""
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise BadRequest("chunked bodies are not supported: send Content-Length", 411)
        text = self.headers.get("Content-Length", "0").strip()
        if not text.isdigit():
            self.close_connection = True
            raise BadRequest(f"Content-Length {text!r} is not a number")
        if int(text) > MAX_BODY:
            self.close_connection = True
            raise BadRequest(f"the body has {text} bytes; at most {MAX_BODY}", 413)
        return self.rfile.read(int(text))

    def dispatch(self, method):
        ref = self.server.ref
        try:
            body = self.read_body()
        except BadRequest as e:
            return self.fail(e.status, str(e))
        path = self.path.split("?", 1)[0]

        def allow(expected):
            if method != expected:
                self.fail(405, f"{method} {path}: use {expected}", [("Allow", expected)])
            return method == expected

        if path in ("/v2/health/live", "/v2/health/ready"):
            return allow("GET") and self.reply_json(200, {path.rsplit("/", 1)[1]: True})
        if ref.token is not None:
            given = self.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {ref.token}".encode()):
                return self.fail(401, "missing or wrong bearer token", [("WWW-Authenticate", "Bearer")])
        if path == "/v2":
            return allow("GET") and self.reply_json(200, {"name": "oip-reference", "version": VERSION,
                                                          "extensions": ["binary_tensor_data"]})
        match = MODEL_PATH.match(path)
        if not match:
            return self.fail(404, f"no such endpoint: {path}")
        name, version, action = match.groups()
        if name not in (ref.name, ref.name + "-faulty"):
            return self.fail(404, f"unknown model {name!r}")
        if version not in (None, VERSION):
            return self.fail(404, f"model {name!r} has no version {version!r}")
        if action is None:
            return allow("GET") and self.reply_json(200, ref.metadata(name))
        if action == "ready":
            return allow("GET") and self.reply_json(200, {"name": name, "ready": True})
        if allow("POST"):
            self.infer(name, body)

    def infer(self, name, body):
        ref = self.server.ref
        fault = ref.args.fault if name.endswith("-faulty") else None
        try:
            x, request_id, binary_input, binary_output = ref.decode(
                body, self.headers.get("Inference-Header-Content-Length"))
        except BadRequest as e:
            return self.fail(e.status, str(e))
        if fault in ("status500", "throttle"):
            with ref.lock:
                ref.faulty_infers += 1
                n = ref.faulty_infers
            if ref.args.fault_count <= 0 or n <= ref.args.fault_count:
                if fault == "status500":
                    return self.fail(500, f"injected failure (request {n})")
                return self.fail(429, f"injected throttling (request {n})", [("Retry-After", "1")])
        if fault == "garbage":
            return self.reply(200, b'{"outputs": [')
        if fault == "slow":
            time.sleep(SLOW_S)
        z = x.reshape(len(x), -1) @ (ref.w_wide if fault == "shape" else ref.w)
        if fault == "nan":
            z[0, 0] = np.nan
        if fault not in ("shape", "nan"):
            ref.record(name, x, z, binary_input, binary_output)
        response = {"model_name": name, "model_version": VERSION}
        if request_id is not None:
            response["id"] = request_id
        out = {"name": "embeddings", "datatype": "FP32", "shape": list(z.shape)}
        response["outputs"] = [out]
        if not binary_output:
            out["data"] = z.ravel().tolist()  # float32 -> float64 exactly; json writes the shortest repr
            return self.reply_json(200, response)
        raw = z.astype("<f4").tobytes()
        out["parameters"] = {"binary_data_size": len(raw)}
        head = json.dumps(response).encode()
        self.reply(200, head + raw, "application/octet-stream", [("Inference-Header-Content-Length", str(len(head)))])


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):  # a client gone is no error
            super().handle_error(request, client_address)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--image-size", type=int, required=True)
    p.add_argument("--dim", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model-name", default="m")
    p.add_argument("--token-env", default="")
    p.add_argument("--fault", choices=FAULTS)
    p.add_argument("--fault-count", type=int, default=0)
    p.add_argument("--record", default="")
    args = p.parse_args(argv)
    if args.record:
        os.makedirs(args.record, exist_ok=True)
    server = Server(("127.0.0.1", args.port), Handler)
    server.ref = Reference(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


# ---- For tests: start a server as a subprocess, and a tiny urllib client. ----

class ServerProcess:
    """A server subprocess whose URL is read from its first stdout line (regex `pattern`, group 1);
    all its output is kept in .stdout / .stderr (lists of lines). Unpacks as (proc, url)."""

    def __init__(self, cmd, pattern, env=None, timeout=90.0):
        self.cmd = [str(c) for c in cmd]
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     errors="replace", env=env)
        self.stdout, self.stderr = [], []
        first = threading.Event()
        self._pumps = [threading.Thread(target=self._pump, args=(self.proc.stdout, self.stdout, first), daemon=True),
                       threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr, None), daemon=True)]
        for t in self._pumps:
            t.start()
        found = re.search(pattern, self.stdout[0]) if first.wait(timeout) and self.stdout else None
        if not found:
            self.stop()
            raise RuntimeError(f"{' '.join(self.cmd)}: no line matching {pattern!r} first on stdout within "
                               f"{timeout} s; stdout {self.stdout[:5]}, stderr {self.stderr[-20:]}")
        self.url = found.group(1)

    @staticmethod
    def _pump(stream, lines, first):
        for line in stream:
            lines.append(line.rstrip("\n"))
            if first is not None:
                first.set()
        if first is not None:
            first.set()  # end of output without a line: do not wait for the timeout

    def __iter__(self):
        return iter((self.proc, self.url))

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Signal, wait (kill after `timeout` s), drain the output; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for t in self._pumps:
            t.join(5)
        return self.proc.returncode


def start_reference_server(image_size, dim, seed=0, model_name="m", token_env=None, fault=None, fault_count=0,
                           record=None, env=None, timeout=30.0):
    """This file as a server on a free port: a ServerProcess (proc, url); stop it with .stop()."""
    cmd = [sys.executable, __file__, "--port", "0", "--image-size", image_size, "--dim", dim, "--seed", seed,
           "--model-name", model_name]
    for flag, value in (("--token-env", token_env), ("--fault", fault), ("--record", record)):
        if value:
            cmd += [flag, value]
    if fault:
        cmd += ["--fault-count", fault_count]
    return ServerProcess(cmd, r"listening on (http://[0-9.]+:\d+)", env=dict(os.environ, **(env or {})),
                         timeout=timeout)


def stop_reference_server(server):
    return server.stop()


def oip_request(url, body=None, headers=None, method=None, timeout=30.0):
    """One HTTP request: (status, headers, body bytes), error statuses included. A dict body is sent as JSON."""
    headers = dict(headers or {})
    if isinstance(body, dict):
        body = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    request = urllib.request.Request(url, data=body, headers=headers,
                                     method=method or ("GET" if body is None else "POST"))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.headers, e.read()


def infer_body(x, binary_input=False, binary_output=False, nested=False, request_id=None):
    """(body, headers) of an infer request with `x` as the FP32 input "images". binary_output: True asks
    for it per output (outputs[0].parameters.binary_data), "all" with parameters.binary_data_output."""
    x = np.ascontiguousarray(x, np.float32)
    tensor = {"name": "images", "shape": list(x.shape), "datatype": "FP32"}
    tail = b""
    if binary_input:
        tail = x.astype("<f4").tobytes()
        tensor["parameters"] = {"binary_data_size": len(tail)}
    else:
        tensor["data"] = x.tolist() if nested else x.ravel().tolist()
    request = {"inputs": [tensor]}
    if request_id is not None:
        request["id"] = request_id
    if binary_output == "all":
        request["parameters"] = {"binary_data_output": True}
    elif binary_output:
        request["outputs"] = [{"name": "embeddings", "parameters": {"binary_data": True}}]
    head = json.dumps(request).encode()
    if not tail:
        return head, {"Content-Type": "application/json"}
    return head + tail, {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(head))}


def infer_result(headers, body):
    """(response JSON, output as a float32 array of its shape, whether it came binary) of a 200 answer."""
    n = headers.get("Inference-Header-Content-Length")
    n = len(body) if n is None else int(n)
    response = json.loads(body[:n].decode("utf-8"))
    [out] = response["outputs"]
    size = (out.get("parameters") or {}).get("binary_data_size")
    if size is None:
        assert n == len(body), "bytes after the JSON but no binary_data_size"
        z = np.asarray(out["data"], np.float64).astype(np.float32)  # float32 exact through float64
    else:
        assert len(body) - n == size, f"binary_data_size {size}, {len(body) - n} bytes after the JSON"
        z = np.frombuffer(body[n:], "<f4").astype(np.float32)
    return response, z.reshape(out["shape"]), size is not None


if __name__ == "__main__":
    main()
