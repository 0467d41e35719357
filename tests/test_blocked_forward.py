"""Rows evaluated with their own group's parameters, many groups at once."""

from functools import partial

import pytest
import torch
from torch.func import functional_call

from skmeta._functional import blocked_forward, mlp_forward, mlp_layers
from skmeta.modules import MLP


def _states(module, n_states, generator):
    return {
        name: p.detach().double()[None]
        + 0.1 * torch.randn((n_states, *p.shape), generator=generator).double()
        for name, p in module.named_parameters()
    }


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize(
    "index",
    [
        # every state present, at most a block of rows each: slices of the states
        [1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 3],
        # a state missing, one with several blocks: gathered states
        [0, 2, 2, 4] + [5] * 40 + [2],
        [3] * 50,
    ],
)
@pytest.mark.parametrize("max_block_params", [2**24, 1])
@pytest.mark.parametrize("max_block_rows", [2**14, 40])
def test_blocked_forward_uses_each_rows_parameters(
    fast, index, max_block_params, max_block_rows
):
    generator = torch.Generator().manual_seed(0)
    module = MLP(4, 3, hidden_units=(8, 8)).double()
    states = _states(module, 6, generator)
    index = torch.tensor(index)
    X = torch.randn(len(index), 4, generator=generator, dtype=torch.float64)
    forward = partial(mlp_forward, mlp_layers(module)) if fast else None
    out = blocked_forward(
        module,
        states,
        {},
        X,
        index,
        forward=forward,
        max_block_params=max_block_params,
        max_block_rows=max_block_rows,
    )
    expected = torch.cat(
        [
            functional_call(module, {k: v[t] for k, v in states.items()}, X[i : i + 1])
            for i, t in enumerate(index.tolist())
        ]
    )
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize(
    "sizes",
    [
        (20, (64,), 2),  # the default MLP's shape: blocks of at least 4 rows
        (3, (4,), 2),  # narrow layers: blocks of at least 50 rows
    ],
)
def test_a_rows_float32_output_does_not_depend_on_the_rows_with_it(fast, sizes):
    # Products below torch's BLAS threshold are computed by another kernel,
    # which rounds differently: blocks are kept above it in every layer.
    n_in, hidden, n_out = sizes
    generator = torch.Generator().manual_seed(0)
    module = MLP(n_in, n_out, hidden_units=hidden)
    states = {k: v.float() for k, v in _states(module, 4, generator).items()}
    index = torch.tensor([1] * 300 + [2] * 7 + [3])
    X = torch.randn(len(index), n_in, generator=generator)
    forward = partial(mlp_forward, mlp_layers(module)) if fast else None
    together = blocked_forward(module, states, {}, X, index, forward=forward)
    for rows in ([0], [0, 1, 2], list(range(40)), [300], [300, 301], [307], [0, 307]):
        alone = blocked_forward(
            module, states, {}, X[rows], index[rows], forward=forward
        )
        assert torch.equal(alone, together[rows]), rows
