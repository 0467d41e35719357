import os

import numpy as np
import pytest
import torch
from hypothesis import settings

# The test models are tiny: one thread avoids the cost of intra-op parallelism
# and keeps the suite fast when the machine is busy.
torch.set_num_threads(1)

settings.register_profile("ci", max_examples=25, deadline=None)
settings.load_profile(os.getenv("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def grouped_data():
    """Three groups whose decision rules differ; one of them is small."""
    rng = np.random.RandomState(0)
    n = 300
    X = rng.normal(size=(n, 4))
    groups = rng.choice(["a", "b", "c"], size=n, p=[0.45, 0.45, 0.1])
    shift = np.select([groups == "a", groups == "b"], [0.0, 1.0], -1.0)
    y = (X[:, 0] + shift * X[:, 1] > 0).astype(np.int64)
    return X, y, groups
