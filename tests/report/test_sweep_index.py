"""Tests of analysis/sweep_index.py, the index model shared by report.py, report_figures.py and
summarize.py: the per-cell statistics by hand, and the import graph (report_figures.py does not
import report.py, in the package or as the scripts import it)."""
import math
import subprocess
import sys
from pathlib import Path

import pytest

from analysis import sweep_index

REPO = Path(__file__).resolve().parents[2]


def test_cell_stat_by_hand():
    # 0.2, 0.4, 0.9: mean 0.5, sample variance ((-0.3)^2 + (-0.1)^2 + 0.4^2) / 2 = 0.13
    s = sweep_index.cell_stat([0.2, 0.4, 0.9])
    assert s.n == 3 and s.mean == pytest.approx(0.5) and s.std == pytest.approx(math.sqrt(0.13))
    assert s.half == pytest.approx(4.303 * math.sqrt(0.13) / math.sqrt(3))
    one = sweep_index.cell_stat([0.75])  # n = 1: the sample std is undefined
    assert one.n == 1 and one.mean == 0.75 and math.isnan(one.std) and math.isnan(one.half)
    none = sweep_index.cell_stat([])
    assert none.n == 0 and math.isnan(none.mean) and math.isnan(none.std)
    undefined = sweep_index.cell_stat([0.5, math.nan])  # never averaged away
    assert undefined.n == 2 and math.isnan(undefined.mean) and math.isnan(undefined.std)


def test_markdown_stat_conventions():
    md = sweep_index.markdown_stat
    assert md(sweep_index.cell_stat([0.2, 0.4, 0.9]), "accuracy") == "0.500 ± 0.361 [-0.396, 1.396]"
    assert md(sweep_index.cell_stat([0.75]), "accuracy") == "0.750"           # n = 1: the mean alone
    assert md(sweep_index.cell_stat([]), "accuracy") == "—"                   # no complete seed
    assert md(sweep_index.cell_stat([0.5, math.nan]), "auc") == "n/a"         # undefined for a seed
    assert md(sweep_index.cell_stat([1000.0, 1200.0]), "queries") == "1,100 ± 141"
    assert md(sweep_index.cell_stat([400.0]), "queries") == "400"


def modules_after(code, path_entry):
    """The module names loaded by `code` in a fresh interpreter with path_entry on sys.path."""
    proc = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(path_entry)!r}); {code}; "
                           "print(' '.join(sorted(sys.modules)))"], capture_output=True, text=True, cwd="/",
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    return set(proc.stdout.split())


def test_report_figures_does_not_import_report():
    loaded = modules_after("import analysis.report_figures", REPO)
    assert "analysis.report_figures" in loaded and "analysis.sweep_index" in loaded
    assert "analysis.report" not in loaded and "report" not in loaded
    # the way report.py, run as a script, imports it: analysis/ on sys.path, plain names
    loaded = modules_after("import report_figures", REPO / "analysis")
    assert "report_figures" in loaded and "sweep_index" in loaded
    assert "report" not in loaded and "analysis.report" not in loaded


def test_one_copy_of_the_model_when_report_runs_as_a_script():
    # report.py as __main__ and report_figures share one sweep_index module (no second copy of
    # the model under another name, no `report` alias in sys.modules).
    code = ("import runpy, sys; sys.argv = ['report.py', '--help']\n"
            "try:\n    runpy.run_path(sys.path[0] + '/report.py', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            "import report_figures, sweep_index\n"
            "assert report_figures.S is sweep_index\n"
            "assert 'report' not in sys.modules and 'analysis.sweep_index' not in sys.modules")
    proc = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(REPO / 'analysis')!r})\n{code}"],
                          capture_output=True, text=True, cwd="/", timeout=60)
    assert proc.returncode == 0, proc.stderr
