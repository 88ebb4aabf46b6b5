"""Bytes in a manifest that used to slip through (issue 15, audit rows 7 and 8): a NUL inside an
image path is a data error naming the row (it used to cut the path, so another file was read),
and binary bytes in a header reach the error line escaped, as valid UTF-8."""
import os
import shutil
import subprocess

import pytest

from dne_testing import MANIFEST_CONFIG, MANIFEST_SMALL


@pytest.fixture
def phantom(phantom_dir, tmp_path):
    """A private copy of the module's phantom data set (the tests add manifests to it)."""
    copy = tmp_path / "data"
    shutil.copytree(phantom_dir, copy)
    return copy


def run_bytes(dne_bin, manifest, out):
    """`dne run` on the manifest with stdout/stderr as bytes (the test decodes them strictly)."""
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    return subprocess.run([dne_bin, "run", "--config", str(MANIFEST_CONFIG), "--out", str(out), *map(str, MANIFEST_SMALL),
                           "--set", f'data.manifest="{manifest}"'], capture_output=True, env=env, timeout=600)


def test_nul_in_a_path_is_a_data_error_naming_the_row(dne_bin, phantom, tmp_path):
    lines = (phantom / "manifest.csv").read_bytes().split(b"\n")
    first = lines[1].split(b",")
    first[0] = first[0] + b"\x00.other.png"
    lines[1] = b",".join(first)
    manifest = phantom / "nul.csv"
    manifest.write_bytes(b"\n".join(lines))
    proc = run_bytes(dne_bin, manifest, tmp_path / "out")
    assert proc.returncode == 2
    err = proc.stderr.decode("utf-8")
    [line] = [text for text in err.splitlines() if text.strip()]
    assert line.startswith("dne: data error:") and "nul.csv:2" in line and "NUL byte" in line, line
    assert not (tmp_path / "out" / "index.h5").exists()


def test_binary_header_bytes_are_escaped_in_the_error(dne_bin, phantom, tmp_path):
    lines = (phantom / "manifest.csv").read_bytes().split(b"\n")
    lines[0] = b"\xff\xfepath\x00,split,sex,label"
    manifest = phantom / "binary.csv"
    manifest.write_bytes(b"\n".join(lines))
    proc = run_bytes(dne_bin, manifest, tmp_path / "out")
    assert proc.returncode == 2
    err = proc.stderr.decode("utf-8")  # raises if any invalid byte reached the terminal
    [line] = [text for text in err.splitlines() if text.strip()]
    assert line.startswith("dne: data error:") and "\\xff\\xfe" in line, line
