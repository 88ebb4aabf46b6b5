"""The image cache is one copy per node (issue 27): two ranks of `dne bench --data` decode a
phantom manifest into one cache file, map it, read every image, and report what their mapping
of the file holds (/proc/self/smaps). Neither rank may hold the cache privately: once both have
read every image, each mapping's resident pages are shared (counted once for the node), and
each rank's proportional share (Pss) is half the file."""
import re

from dne_testing import run_dne


def test_second_rank_holds_no_private_copy_of_the_cache(dne_bin, tmp_path):
    data = tmp_path / "data"
    made = run_dne(dne_bin, "phantom", "--out", data, "--set", "data.n_train=1500", "--set", "data.n_test=500")
    assert made.returncode == 0, made.stderr
    proc = run_dne(dne_bin, "bench", "--data", data / "manifest.csv", "--set", "data.image_size=64", "--repeats", "1",
                   mpi_ranks=2)
    assert proc.returncode == 0, proc.stderr
    rows = {int(m[1]): [float(v) for v in m.groups()[1:]] for m in re.finditer(
        r"rank (\d+): cache mapping rss ([\d.]+) MB, shared ([\d.]+) MB, private ([\d.]+) MB, pss ([\d.]+) MB "
        r"of a ([\d.]+) MB mapping", proc.stdout)}
    assert sorted(rows) == [0, 1], proc.stdout
    for rank, (rss, shared, private, pss, size) in rows.items():
        assert size >= 2000 * 64 * 64 / 1e6, (rank, size)  # 2000 images of 4096 one-byte samples
        assert rss >= 0.95 * size and shared >= 0.95 * size, (rank, rows[rank])  # every page read, all shared
        assert private <= 0.02 * size, (rank, rows[rank])
        assert abs(pss - size / 2) <= 0.05 * size, (rank, rows[rank])
    assert re.search(r"2 ranks of the job [\d.]+x", proc.stdout)
