#!/usr/bin/env python3
"""Run a command and report, for every `dne` process it starts (each MPI rank), the peak of its
private memory (RssAnon: heap, tensors, buffers), of the file pages it maps (RssFile: the shared
image cache counts here, one copy per node in the page cache) and its VmHWM (the kernel's peak of
their sum). Sampled from /proc/<pid>/status every --interval seconds (issue 27).

Usage: /usr/bin/python3 scripts/peak_memory.py [--interval 0.2] -- mpirun -n 2 build/dne run --config C
Prints one line per process after the command ends (also when it is stopped with SIGTERM or
SIGINT, which are passed on to it), and exits with the command's exit code."""
import argparse
import os
import signal
import subprocess
import sys
import time


def descendants(root):
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
        except OSError:
            continue
    found, pending = [], [root]
    while pending:
        pid = pending.pop()
        for child in children.get(pid, []):
            found.append(child)
            pending.append(child)
    return found


def status(pid):
    values = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("Name", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                    values[key] = rest.strip()
    except OSError:
        return None
    return values


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--interval", type=float, default=0.2)
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        sys.exit("peak_memory: no command given")
    proc = subprocess.Popen(command)
    # SIGTERM / SIGINT go to the command (dne stops cleanly on them); the peaks are still printed.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda number, frame: proc.send_signal(number))
    peaks = {}  # pid -> {key: max kB}
    while proc.poll() is None:
        for pid in descendants(proc.pid) + [proc.pid]:
            s = status(pid)
            if not s or s.get("Name") != "dne":
                continue
            p = peaks.setdefault(pid, {})
            for key in ("VmHWM", "RssAnon", "RssFile", "RssShmem"):
                if key in s:
                    p[key] = max(p.get(key, 0), int(s[key].split()[0]))
        time.sleep(args.interval)
    for pid, p in sorted(peaks.items()):
        print(f"peak_memory: dne pid {pid}: RssAnon {p.get('RssAnon', 0) * 1024 / 1e9:.2f} GB (private), "
              f"RssFile {p.get('RssFile', 0) * 1024 / 1e9:.2f} GB (mapped files, shared), VmHWM {p.get('VmHWM', 0) * 1024 / 1e9:.2f} GB")
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
