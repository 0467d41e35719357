"""Reliability probes: concurrent prediction, non-finite training, weight
scale, unknown and colliding group labels, skorch's restore pattern and what
a fitted model holds.

Each probe prints what the skmeta it imports does. Run it against any
checkout (an older commit shows the defects these probes were written for)::

    git worktree add /tmp/old <commit>
    PYTHONPATH=/tmp/old OMP_NUM_THREADS=1 python benchmarks/probe_reliability.py
    OMP_NUM_THREADS=1 python benchmarks/probe_reliability.py
"""

import io
import pickle
import threading
import warnings

import numpy as np
import torch

import skmeta
from skmeta import MAMLClassifier, PrototypicalClassifier

torch.set_num_threads(1)
rng = np.random.RandomState(0)
X = rng.normal(size=(300, 4)).astype(np.float32)
g = rng.randint(0, 3, size=300)
y = (X[:, 0] + 0.5 * g + 0.3 * rng.normal(size=300) > 0.5).astype(int)


def run(name, probe):
    try:
        print(f"{name}: {probe()}")
    except Exception as exc:  # a probe reports what it raised
        print(f"{name}: raised {type(exc).__name__}: {str(exc)[:150]}")


def concurrent_predict():
    """4 threads x 5 predict_proba calls on one model, against a serial call."""
    model = MAMLClassifier(max_epochs=2, random_state=0)
    model.fit(X, y, sensitive_features=g)
    X_big, g_big = np.repeat(X, 20, axis=0), np.repeat(g, 20)
    serial = model.predict_proba(X_big, sensitive_features=g_big)
    results, errors = [], []

    def work():
        try:
            for _ in range(5):
                results.append(model.predict_proba(X_big, sensitive_features=g_big))
        except Exception as exc:
            errors.append(repr(exc))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    differ = sum(not np.allclose(r, serial, atol=1e-5) for r in results)
    intact = all(isinstance(p, torch.nn.Parameter) for p in model.module_.parameters())
    return (
        f"errors={len(errors)} differing={differ}/{len(results)} "
        f"module params intact={intact}"
    )


def huge_features():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MAMLClassifier(max_epochs=2, random_state=0)
        model.fit(X * 1e7, y, sensitive_features=g)
    proba = model.predict_proba(X * 1e7, sensitive_features=g)
    return f"fit returned; NaN share of proba {np.isnan(proba).mean():.2f}"


def weight_scale():
    out = []
    for klass in (MAMLClassifier, PrototypicalClassifier):
        probas = []
        for scale in (1.0, 0.01):
            model = klass(max_epochs=2, random_state=0)
            model.fit(X, y, sensitive_features=g, sample_weight=np.full(300, scale))
            probas.append(model.predict_proba(X, sensitive_features=g))
        change = np.abs(probas[0] - probas[1]).max()
        out.append(f"{klass.__name__} max|dp|={change:.3g}")
    return "; ".join(out)


def unknown_groups():
    model = PrototypicalClassifier(max_epochs=2, random_state=0)
    model.fit(X, y, sensitive_features=g)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.predict(X, sensitive_features=g.astype(str))
    return f"warnings: {[str(w.message)[:60] for w in caught]}"


def intersectional_labels():
    model = PrototypicalClassifier(max_epochs=1, random_state=0)
    sensitive = np.array([["a, b", "c"], ["a", "b, c"]] * 150, dtype=object)
    model.fit(X, y, sensitive_features=sensitive)
    return f"tasks_={list(model.tasks_)}"


def restore_pattern():
    model = MAMLClassifier(max_epochs=1, random_state=0).fit(X, y)
    buffer = io.BytesIO()
    model.save_params(f_params=buffer)
    buffer.seek(0)
    fresh = MAMLClassifier(module__n_features_in=4, module__n_classes=2)
    fresh.initialize().load_params(f_params=buffer)
    return "ok"


def pickle_contents():
    model = MAMLClassifier(max_epochs=1, random_state=0)
    model.fit(X, y, sensitive_features=g)
    names = [k for k in vars(model) if "support" in k]
    return f"support attributes: {names}; pickle bytes {len(pickle.dumps(model))}"


if __name__ == "__main__":
    print("skmeta imported from", skmeta.__file__)
    run("1 concurrent predict", concurrent_predict)
    run("2 features x 1e7", huge_features)
    run("3 weights x 0.01", weight_scale)
    run("4 int groups at fit, str at predict", unknown_groups)
    run("5 intersectional labels", intersectional_labels)
    run("7 initialize() + load_params", restore_pattern)
    run("8 what a pickle holds", pickle_contents)
