"""tests/gtest_verdict.py (issue 26): a GPU test shows as passed only when its cases ran and
passed, as skipped only when every case skipped, and as failed when one failed, also beside a
skipped case (which ctest's SKIP_REGULAR_EXPRESSION reported as skipped). Runs the fixture
program tests/unit/verdict_fixture.cpp (DNE_VERDICT_FIXTURE) directly and under mpiexec -n 2."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import gtest_verdict  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[1] / "gtest_verdict.py"
FIXTURE = os.environ.get("DNE_VERDICT_FIXTURE")
needs_fixture = pytest.mark.skipif(not FIXTURE, reason="DNE_VERDICT_FIXTURE is set by ctest (tests/CMakeLists.txt)")
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")


def run(cases, fail_rank=None, ranks=None):
    env = dict(ENV)
    env.pop("DNE_VERDICT_FAIL_RANK", None)
    if fail_rank is not None:
        env["DNE_VERDICT_FAIL_RANK"] = str(fail_rank)
    mpi = ["--mpiexec", shutil.which("mpiexec"), "--np", str(ranks), "--mpi-arg=--oversubscribe"] if ranks else []
    proc = subprocess.run([sys.executable, str(SCRIPT), *mpi, "--", FIXTURE, "--gtest_filter=" + cases],
                          capture_output=True, text=True, env=env, timeout=120)
    return proc.returncode, proc.stdout


def report(*outcomes):
    """A GoogleTest JSON report with one case per outcome."""
    case = {"passed": {"status": "RUN", "result": "COMPLETED"}, "skipped": {"status": "RUN", "result": "SKIPPED"},
            "failed": {"status": "RUN", "result": "COMPLETED", "failures": [{"failure": "x"}]},
            "notrun": {"status": "NOTRUN", "result": "SUPPRESSED"}}
    return {"testsuites": [{"name": "S", "testsuite": [dict(case[o], name=f"c{i}") for i, o in enumerate(outcomes)]}]}


def test_the_rule_on_hand_written_reports():
    assert gtest_verdict.verdict([report("passed", "skipped")], 0)[0] == 0
    assert gtest_verdict.verdict([report("skipped", "skipped")], 0)[0] == 77
    assert gtest_verdict.verdict([report("skipped", "failed")], 1)[0] == 1
    assert gtest_verdict.verdict([report("passed")], 134)[0] == 1            # a crash after the cases
    assert gtest_verdict.verdict([report("notrun")], 0)[0] == 1              # nothing ran
    assert gtest_verdict.verdict([report("passed"), None], 0)[0] == 1        # a rank wrote no report
    assert gtest_verdict.verdict([report("passed"), report("skipped")], 0)[0] == 0


@needs_fixture
def test_one_skipped_and_one_passed_case_is_passed():
    code, out = run("Verdict.Passes:Verdict.Skips")
    assert code == 0, out
    assert "Verdict.Skips skipped" in out and "1 passed, 1 skipped, 0 failed" in out


@needs_fixture
def test_every_case_skipped_is_skipped():
    assert run("Verdict.Skips")[0] == 77


@needs_fixture
def test_a_failed_case_beside_a_skipped_one_is_failed():
    code, out = run("Verdict.Skips:Verdict.FailsWhenAsked", fail_rank=0)
    assert code == 1, out
    assert "Verdict.FailsWhenAsked failed" in out


@needs_fixture
def test_a_filter_that_matches_nothing_is_failed():
    assert run("Nothing.*")[0] == 1


@needs_fixture
def test_under_mpiexec_a_failure_on_one_rank_is_failed():
    code, out = run("Verdict.Passes:Verdict.Skips", ranks=2)
    assert code == 0, out
    assert "over 2 rank(s)" in out
    code, out = run("Verdict.Passes:Verdict.Skips:Verdict.FailsWhenAsked", fail_rank=1, ranks=2)
    assert code == 1, out
    assert "rank 1: Verdict.FailsWhenAsked failed" in out
