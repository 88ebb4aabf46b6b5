"""Small TorchScript models for the tests that serve one with `dne serve` (tests/remote, tests/reliability)."""
import torch


class Lin(torch.nn.Module):
    """(B, 1, side, side) -> (B, dim): tanh of a fixed seeded projection of the flattened image."""

    def __init__(self, side: int, dim: int, seed: int):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = torch.nn.Parameter(torch.randn(side * side, dim, generator=g) / side, requires_grad=False)

    def forward(self, x):
        return torch.tanh(x.flatten(1) @ self.w)
