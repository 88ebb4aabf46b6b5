#!/usr/bin/env python3
"""Scaling of GeZO against a remote FM (issue 14): `dne serve` with an injected per-request
latency, and one GeZO experiment on 1, 2, 4 and 8 ranks per experiment (mpirun --oversubscribe),
for JSON and for the binary tensor extension. Prints a Markdown table for docs/performance.md.

Per run it reads the experiment file back (h5py): the editor's wall time (timings/edit_s), its
queries and the client's requests and latency percentiles. Speed-up is edit_s on 1 rank over
edit_s on k ranks, against the ideal of k (evaluations per iteration divide evenly by 1, 2, 4 and
8 except the first of each batch). Overhead per request: the client's median round trip (encode,
send, server, receive, decode) minus the server's median time for the same requests (from its
access log, injected latency and model included), next to a bare HTTP round trip (keep-alive
GET /v2/health/ready from Python, median of 200) measured in the same run.

Usage: /usr/bin/python3 scripts/bench_remote.py [--latency-ms 20] [--layouts 1x1,2x1,4x1,8x1] [--encodings json,binary]
(a layout is ranks x api.concurrency; the first one of each encoding is the baseline)
(build first: scripts/build.sh; run as root needs scripts/mpi-env.sh's variables, set here)."""
import argparse
import http.client
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py

REPO = Path(__file__).resolve().parents[1]
DNE = os.environ.get("DNE_BIN", str(REPO / "build" / "dne"))
SERVED = '[data]\nimage_size = 32\n[fm]\nkind = "cnn"\nwidth = 8\nembed_dim = 16\n'
# 2 batches of 32 images x 8 local iterations of 2 x 16 candidates (+1 on a batch's first).
EXPERIMENT = ('[data]\nimage_size = 32\nn_train = 64\nn_test = 64\n'
              '[dne]\nmethod = "gezo"\nepochs = 1\nbatch_size = 32\n'
              '[zo]\ncandidates = 16\n[gezo]\nlocal_epochs = 8\n')


def start_server(config, latency_ms, log, model_workers):
    proc = subprocess.Popen([DNE, "serve", "--config", str(config), "--port", "0", "--threads", "16",
                             "--model-workers", str(model_workers),
                             "--latency-ms", str(latency_ms), "--access-log", str(log)],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    match = re.search(r"listening on http://([0-9.]+):(\d+)", line)
    if not match:
        proc.kill()
        sys.exit(f"dne serve did not start: {line!r}")
    return proc, match.group(1), int(match.group(2))


def bare_round_trip_ms(host, port, n=200):
    conn = http.client.HTTPConnection(host, port)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        conn.request("GET", "/v2/health/ready")
        conn.getresponse().read()
        times.append((time.perf_counter() - t0) * 1e3)
    conn.close()
    return statistics.median(times)


def server_ms(log, start_line):
    """Median and mean of the server's time for the inferences logged after `start_line`."""
    lines = log.read_text().splitlines()
    ms = [float(re.search(r"ms=([0-9.e+-]+)", l).group(1)) for l in lines[start_line:] if "/infer 200" in l]
    return (statistics.median(ms), statistics.mean(ms)) if ms else (float("nan"),) * 2, len(lines)


def rounds(k):
    """Rounds of requests the experiment needs with k evaluations at once: 2 batches of one
    iteration of 33 evaluations and 7 of 32."""
    return 2 * (-(-33 // k) + 7 * -(-32 // k))


def run(tmp, url, ranks, concurrency, encoding):
    out = tmp / f"out_{encoding}_{ranks}x{concurrency}"
    cfg = tmp / f"run_{encoding}_{ranks}x{concurrency}.toml"
    cfg.write_text(EXPERIMENT + f'[fm]\nkind = "remote"\n[api]\nurl = "{url}"\nmodel = "dne"\n'
                   f'binary = {"true" if encoding == "binary" else "false"}\nconcurrency = {concurrency}\n'
                   f'[sweep]\nseeds = [0]\nranks_per_experiment = {ranks}\n[output]\ndir = "{out}"\n')
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    cmd = ["mpirun", "--oversubscribe", "--bind-to", "none", "-n", str(ranks), DNE, "run", "--config", str(cfg), "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    [path] = (out / "experiments").glob("*.h5")
    with h5py.File(path, "r") as f:
        p = f["provenance"].attrs
        return {"edit_s": float(f["timings"].attrs["edit_s"]), "queries": int(p["queries"]),
                "requests": int(p["api_requests"]), "p50": float(p["api_latency_p50_ms"]),
                "p99": float(p["api_latency_p99_ms"]), "noise": f["noise"][...].tobytes()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--latency-ms", type=float, default=20.0)
    ap.add_argument("--layouts", default="1x1,2x1,4x1,8x1")
    ap.add_argument("--encodings", default="json,binary")
    ap.add_argument("--model-workers", type=int, default=1)
    args = ap.parse_args()
    layouts = [tuple(int(v) for v in layout.split("x")) for layout in args.layouts.split(",")]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        (tmp / "serve.toml").write_text(SERVED)
        log = tmp / "access.log"
        server, host, port = start_server(tmp / "serve.toml", args.latency_ms, log, args.model_workers)
        try:
            url = f"http://{host}:{port}"
            bare = bare_round_trip_ms(host, port)
            print(f"# dne serve --latency-ms {args.latency_ms:g} --model-workers {args.model_workers} (16 HTTP threads, CNN width 8, D = 16, 32x32); "
                  f"GeZO 2 batches x 8 local iterations x 2 x 16 candidates, 32 images per request; "
                  f"bare HTTP round trip (Python, keep-alive GET) {bare:.3f} ms")
            print("| encoding | ranks x concurrency | edit s | speed-up | / ideal | / rounds bound | ms per round | queries/s "
                  "| requests | client p50 ms | server p50 ms | server mean ms | client overhead ms | p99 ms | noise = 1 rank |")
            print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
            line = 0
            for encoding in args.encodings.split(","):
                base = None
                for k, c in layouts:
                    r = run(tmp, url, k, c, encoding)
                    (s_ms, s_mean), line = server_ms(log, line)
                    base = base or r
                    speed = base["edit_s"] / r["edit_s"]
                    bound = rounds(1) / rounds(k * c)
                    print(f"| {encoding} | {k} x {c} | {r['edit_s']:.2f} | {speed:.2f} | {speed / (k * c):.2f} | "
                          f"{speed / bound:.2f} | {1e3 * r['edit_s'] / rounds(k * c):.1f} | "
                          f"{r['queries'] / r['edit_s']:.0f} | {r['requests']} | {r['p50']:.2f} | {s_ms:.2f} | {s_mean:.2f} | "
                          f"{r['p50'] - s_ms:.2f} | {r['p99']:.2f} | {'yes' if r['noise'] == base['noise'] else 'NO'} |",
                          flush=True)
        finally:
            server.terminate()
            server.wait(30)


if __name__ == "__main__":
    main()
