"""TorchScript FMs that misbehave (issue 15, audit rows 2-4): each is a model error (exit 2) whose
one line says what was expected and what came back, never an internal error or an experiment
that "completes" with meaningless results. The modules are scripted here with torch."""
import pytest
import torch

from dne_testing import run_dne

SIDE = 32


class Raises(torch.nn.Module):
    """Fine on the two-image probe at load time, raises on the real batches."""

    def forward(self, x):
        if x.size(0) > 2:
            raise RuntimeError("scanner calibration table missing")
        return x.flatten(1)[:, :8] * 2.0


class Empty(torch.nn.Module):
    def forward(self, x):
        return x.flatten(1)[:, :0]


class Detached(torch.nn.Module):
    def forward(self, x):
        return x.detach().flatten(1)[:, :8] * 2.0


class Constant(torch.nn.Module):
    def forward(self, x):
        return torch.ones(x.size(0), 8)


class Pair(torch.nn.Module):
    def forward(self, x):
        z = x.flatten(1)[:, :8]
        return z, z


class FirstImageOnly(torch.nn.Module):
    """Right for the two-image probe at load time, two rows for every larger batch."""

    def forward(self, x):
        return x.flatten(1)[:2, :8]


@pytest.mark.parametrize("module,method,fragments", [
    (Raises, "none", ["forward failed", "scanner calibration table missing"]),
    (Empty, "none", ["D >= 1"]),
    (Detached, "whitebox", ["does not depend on the input through differentiable operations"]),
    (Constant, "none", ["does not depend on the input"]),
    (Pair, "none", ["forward returned a Tuple", "one (B, D) float32 tensor"]),
    (FirstImageOnly, "none", ["for a batch of", "the first dimension must be the batch"]),
])
def test_misbehaving_torchscript_is_a_model_error(dne_bin, tmp_path, module, method, fragments):
    path = tmp_path / "fm.pt"
    torch.jit.script(module()).save(str(path))
    cfg = tmp_path / "run.toml"
    cfg.write_text(f'[data]\nimage_size = {SIDE}\nn_train = 120\nn_test = 80\n'
                   f'[fm]\nkind = "torchscript"\ntorchscript = "{path}"\n'
                   f'[dne]\nmethod = "{method}"\nepochs = 1\n[output]\ndir = "{tmp_path / "out"}"\n')
    proc = run_dne(dne_bin, "run", "--config", cfg)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("dne: model error:"), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "internal error" not in proc.stderr
