"""Run a GoogleTest binary (optionally under mpiexec) and turn its cases into one ctest verdict.

ctest's SKIP_REGULAR_EXPRESSION marks a test skipped when any line matches, whatever its exit code:
one skipped case hid the others' results, and a failing case next to a skipped one showed as
skipped (issue 26). Here every rank writes GoogleTest's JSON report, and the verdict is read from
the cases themselves:

  exit 1   a case failed, a rank's report is missing or unreadable, the command failed without a
           failing case (a crash), or no case ran at all;
  exit 77  every case that ran was skipped (ctest: SKIP_RETURN_CODE 77);
  exit 0   at least one case passed and none failed (skipped cases beside passed ones are listed).

usage: gtest_verdict.py [--mpiexec EXE --np N [--mpi-arg ARG ...]] -- BINARY [GTEST ARGS...]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SKIPPED = 77


def cases(report):
    """(name, 'passed' | 'failed' | 'skipped') for every case that ran in one JSON report."""
    for suite in report.get("testsuites", []):
        for case in suite.get("testsuite", []):
            if case.get("status") != "RUN":
                continue
            name = f"{suite.get('name')}.{case.get('name')}"
            if case.get("failures"):
                yield name, "failed"
            elif case.get("result") == "SKIPPED":
                yield name, "skipped"
            else:
                yield name, "passed"


def verdict(reports, returncode):
    """(exit code, summary lines) from the per-rank reports (None: missing) and the command's code."""
    lines, counts = [], {"passed": 0, "failed": 0, "skipped": 0}
    for rank, report in enumerate(reports):
        if report is None:
            lines.append(f"rank {rank}: no GoogleTest report (crashed before writing it?)")
            counts["failed"] += 1
            continue
        for name, outcome in cases(report):
            counts[outcome] += 1
            if outcome != "passed":
                lines.append(f"rank {rank}: {name} {outcome}")
    summary = (f"verdict: {counts['passed']} passed, {counts['skipped']} skipped, {counts['failed']} failed "
               f"over {len(reports)} rank(s); command exit {returncode}")
    if counts["failed"] or returncode != 0:
        return 1, lines + [summary + " -> FAILED"]
    if counts["passed"] == 0 and counts["skipped"] == 0:
        return 1, lines + [summary + " -> FAILED (no case ran)"]
    if counts["passed"] == 0:
        return SKIPPED, lines + [summary + " -> SKIPPED (every case skipped)"]
    return 0, lines + [summary + " -> PASSED"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mpiexec")
    parser.add_argument("--np", type=int, default=1)
    parser.add_argument("--mpi-arg", action="append", default=[])
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no GoogleTest command after --")
    with tempfile.TemporaryDirectory(prefix="gtest_verdict_") as folder:
        if args.mpiexec:
            # Each rank names its own report after its world rank (Open MPI, MPICH/Hydra, Slurm).
            per_rank = ('exec "$0" "$@" --gtest_output=json:' + folder +
                        '/rank_${OMPI_COMM_WORLD_RANK:-${PMI_RANK:-${SLURM_PROCID:-0}}}.json')
            full = [args.mpiexec, "-n", str(args.np), *args.mpi_arg, "sh", "-c", per_rank, *command]
            ranks = args.np
        else:
            full = [*command, f"--gtest_output=json:{folder}/rank_0.json"]
            ranks = 1
        returncode = subprocess.run(full, env=os.environ).returncode
        reports = []
        for rank in range(ranks):
            path = Path(folder) / f"rank_{rank}.json"
            try:
                reports.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                reports.append(None)
    code, lines = verdict(reports, returncode)
    for line in lines:
        print(line, flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
