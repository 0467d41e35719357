"""The default modules, and the input skip of EmbeddingMLP."""

import pickle

import numpy as np
import torch

from skmeta import PrototypicalClassifier
from skmeta._functional import mlp_layers
from skmeta.modules import MLP, EmbeddingMLP

FAST = dict(max_epochs=2, steps_per_epoch=5, random_state=0)


def test_skip_appends_the_scaled_input_to_the_embedding():
    torch.manual_seed(0)
    module = EmbeddingMLP(4, embedding_dim=3, skip=True)
    with torch.no_grad():
        module.skip_scale.fill_(0.5)
    X = torch.randn(6, 4)
    out = module(X)
    assert out.shape == (6, 3 + 4)
    torch.testing.assert_close(out[:, :3], module.net(X))
    torch.testing.assert_close(out[:, 3:], 0.5 * X)
    # Not a plain MLP: the closed-form MAML path must not take it.
    assert mlp_layers(module) is None
    assert mlp_layers(EmbeddingMLP(4, embedding_dim=3)) is not None
    assert not MLP(4, 2).skip and not hasattr(MLP(4, 2), "skip_scale")


def test_protonet_learns_the_skip_scale_and_adapts_in_the_longer_embedding(
    grouped_data,
):
    X, y, groups = grouped_data
    clf = PrototypicalClassifier(module__skip=True, **FAST)
    clf.fit(X, y, sensitive_features=groups)
    assert clf.module_.skip_scale.item() != 1.0  # trained by the outer loop
    assert clf.global_state_.shape == (2, 32 + X.shape[1])
    plain = PrototypicalClassifier(**FAST).fit(X, y, sensitive_features=groups)
    proba = clf.predict_proba(X, sensitive_features=groups)
    assert not np.allclose(proba, plain.predict_proba(X, sensitive_features=groups))
    # A new group, pickling: the skip travels with the module.
    clf.partial_fit(X[:10], y[:10], sensitive_features=["new"] * 10)
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(
        restored.predict_proba(X, sensitive_features=groups),
        clf.predict_proba(X, sensitive_features=groups),
    )
