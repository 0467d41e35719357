"""Scaling out with existing engines: Dask for searches, Accelerate for devices."""

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, KFold

from skmeta import MAMLClassifier, PrototypicalClassifier
from skmeta.datasets import make_group_classification

FAST = dict(max_epochs=2, steps_per_epoch=4, random_state=0)


@pytest.mark.parametrize("klass", [MAMLClassifier, PrototypicalClassifier])
def test_accelerate_mixin_on_the_cpu_trains_the_same_model(klass):
    # skorch's AccelerateMixin (Hugging Face Accelerate) runs skmeta's episodes
    # through skorch's own training step: on one device it gives the same model.
    from accelerate import Accelerator
    from skorch.hf import AccelerateMixin

    class Accelerated(AccelerateMixin, klass):
        pass

    X, y, groups = make_group_classification(n_groups=4, random_state=0)
    plain = klass(**FAST).fit(X, y, sensitive_features=groups)
    accelerated = Accelerated(accelerator=Accelerator(cpu=True), **FAST).fit(
        X, y, sensitive_features=groups
    )
    np.testing.assert_allclose(
        accelerated.predict_proba(X, sensitive_features=groups),
        plain.predict_proba(X, sensitive_features=groups),
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.slow
def test_grid_search_on_a_dask_cluster_equals_the_serial_search():
    from dask.distributed import Client, LocalCluster
    from joblib import parallel_config

    X, y, groups = make_group_classification(n_groups=4, random_state=0)
    grid = {"max_epochs": [1, 2], "lr": [1e-3, 1e-2]}

    def search(n_jobs):
        return GridSearchCV(
            PrototypicalClassifier(**{**FAST, "max_epochs": 1}),
            grid,
            cv=KFold(2, shuffle=True, random_state=0),
            n_jobs=n_jobs,
        ).fit(X, y, sensitive_features=groups)

    serial = search(None)
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True) as cluster,
        Client(cluster),
        parallel_config(backend="dask"),
    ):
        distributed = search(-1)
    np.testing.assert_allclose(
        distributed.cv_results_["mean_test_score"],
        serial.cv_results_["mean_test_score"],
    )
    assert distributed.best_params_ == serial.best_params_
