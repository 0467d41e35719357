"""Speed and scale of skmeta, against references measured in the same run.

Every figure comes from one process and one run, and every ratio divides two
figures of that run: absolute times depend on the machine and on its load,
the ratios much less. Nothing is compared with a fixed target.

Sections (``--sections``, by name or number)
--------------------------------------------
1. ``maml``: one MAML meta-step, second and first order, on two settings:
   small (MLP 20-64-64-2, 16 tasks) and big (MLP 20-256-256-2, 32 tasks); each
   task has 10 support rows and 30 query rows (5 + 15 per class), 5 inner SGD
   steps of size 0.3, float32. skmeta runs plain MAML: where the estimator
   has a prior toward the initialisation (``prior_strength``), it is set to
   0. Contenders:

   - skmeta (fit): ``MAMLClassifier.fit`` on groups with 40 rows per class
     (``meta_batch_size`` = the number of groups, so every meta-batch has the
     shapes above). A skorch callback records ``time.perf_counter()`` in
     ``on_batch_begin``; the interval between two calls is the whole cost of
     a step as driven by ``fit``: episode sampling, the meta-step, skorch's
     bookkeeping.
   - skmeta (bare step): ``clf._episode_loss(episode)``, ``backward`` and an
     Adam step, on one fixed episode.
   - torch.func: a reference written here: ``vmap`` over tasks of an inner
     loop of ``torch.func.grad`` and ``functional_call``.
   - learn2learn: ``learn2learn.algorithms.MAML``, the classic loop over
     tasks (``learner = maml.clone()``, ``learner.adapt(loss)``); the query
     losses of all tasks are summed and back-propagated once.
   - higher: ``higher.innerloop_ctx(model, SGD, copy_initial_weights=False,
     track_higher_grads=not first_order)``, a loop over tasks, summed query
     losses. For first order, where the adapted weights are detached, each
     task's query-loss gradient with respect to its adapted weights is added
     to the initial weights' gradients (first-order MAML).

   The references, like the bare step, run ``zero_grad``, the meta-loss on the
   fixed episode, ``backward`` and an Adam step, and use skmeta's own
   ``skmeta.modules.MLP`` with the same initial weights. Before any timing,
   all contenders compute the meta-gradient of the same episode from the same
   weights in float64, and the script prints the largest difference to
   skmeta's, relative to the norm of skmeta's gradient (passes below 1e-8).
   learn2learn and higher are optional: missing, their rows are skipped.
2. ``protonet``: one ProtoNet episode step (``PrototypicalClassifier``,
   default ``EmbeddingMLP`` 20-64-32, 16 tasks, the shapes above): as driven
   by ``fit``, the bare step, and a batched reference written here (one
   embedding call for the support and query rows of all tasks, class sums by
   a one-hot matmul, the same shrinkage toward the meta-batch's prototypes,
   squared distances, cross-entropy). skmeta's shrinkage is fixed at 5 (and
   its distance scale at 1, where it has one), as in the reference. Its loss
   and gradient are checked against skmeta's in float64 first.
3. ``predict``: rows per second of ``predict`` on 100,000 rows of 10 groups
   and 20 features: skmeta's two estimators (default sizes, 1 epoch of 20
   meta-batches, ``n_threads=1``) with ``sensitive_features``; a skorch
   ``NeuralNetClassifier`` with the same MLP (default ``batch_size=128``,
   and again with 65,536); the MLP called once on all rows in plain torch;
   ``LogisticRegression``. Median of ``--repeats`` (at least 3) calls after
   one warm-up call.
4. ``partial_fit``: latency of ``partial_fit`` with 10 rows of a group never
   seen (each call a new group; median of 20 calls after one warm-up
   call), on models fitted on
   about 75,000 rows of 10 groups and of 10,000 groups (5 to 10 rows each).
5. ``scale``: ``fit`` (1 epoch, default ``steps_per_epoch``, which grows with
   the rows), ``predict`` on the training rows, and new-group ``partial_fit``
   (10 rows, median of a few calls), against the number of groups (10 to
   10,000 at 50,000 rows) and of rows (10,000 to 1,000,000 at 10 groups):
   time per row, its ratio to the smallest setting, and peak memory. The
   sweep runs twice and each time is the smallest of the runs. ``--quick``
   runs it once, with 10 to 1,000 groups at 20,000 rows and 10,000 to
   100,000 rows.
6. ``threads``: wall time of a fit and predict of both estimators on the
   bundled Adult data (``max_epochs=2``, the sex x race groups, as in
   ``python -m skmeta``)
   with ``n_threads=1`` and ``n_threads=None`` (torch's default threads:
   ``OMP_NUM_THREADS`` is removed from the environment of the fresh process
   that runs both settings, one after the other, after a warm-up fit on 200
   rows), without and with an artificial load: a second process multiplying
   numpy matrices on one BLAS thread. Each setting is stopped
   ``--threads-timeout`` seconds (60; 20 with ``--quick``) after it starts,
   and the time of the model it stopped is reported as a lower bound.
   ``--quick`` fits 1 epoch of 30 meta-batches instead of 2 default epochs.
   Then the demo itself, ``python -m skmeta --quick --quiet``, with its
   default threads and with ``--threads`` the number of cores, unloaded and
   loaded. ``--skip-threads`` skips the section.

Method
------
Time: ``time.perf_counter``; medians over all timed steps or calls, after
warm-up. In sections 1 and 2 the contenders take turns: each repeat runs a
block of steps of every contender, so a change in the machine's load touches
them all.

Memory: each measured block runs in a child process forked for it (Linux).
After the block's warm-up (steps, or a call of the same code on a few rows)
the child collects garbage, returns freed heap to the system
(``malloc_trim``), and sets its peak resident set size to its current size
(``/proc/self/clear_refs``); the figure is the increase of the peak
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) from there. It counts what
the measured code allocates, torch, numpy and Python alike, and not the
shared library pages the child touches first, which the warm-up maps. Where
the peak cannot be reset, the increase counts from the fork; where ``fork``
is missing, the blocks run in the process and memory is not reported.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_speed.py [--quick]
        [--sections maml,protonet,predict,partial_fit,scale,threads]
        [--repeats R] [--skip-threads]
"""

import argparse
import contextlib
import copy
import ctypes
import datetime
import gc
import importlib.metadata
import io
import json
import multiprocessing as mp
import os
import platform
import queue
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
import sklearn
import skorch
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from skorch import NeuralNetClassifier
from skorch.callbacks import Callback
from torch import nn
from torch.func import functional_call, grad, vmap

import skmeta
from skmeta import MAMLClassifier, PrototypicalClassifier
from skmeta.exceptions import ConstantPredictorWarning
from skmeta.modules import MLP, EmbeddingMLP

try:  # private: times the input checks of predict on their own (section 3)
    from skmeta._input import validate_predict_input
except ImportError:
    validate_predict_input = None

N_FEATURES = 20
N_CLASSES = 2
N_SHOTS = 5
N_QUERIES = 15
INNER_STEPS = 5
INNER_LR = 0.3
META_LR = 1e-3
ROWS_PER_CLASS = 40  # per group, in the data that fit draws its episodes from
SETTINGS = {"small": (64, 16), "big": (256, 32)}  # hidden units, tasks
CHECK_TOLERANCE = 1e-8
RANDOM_STATE = 0

BUDGETS = {
    "quick": {
        "warmup": 1,
        "steps": 4,  # timed MAML steps per block
        "proto_steps": 40,
        "repeats": 2,
        "predict_rows": 100_000,
        "partial_fit_calls": 20,
        "scale_groups": (10, 100, 1_000),
        "scale_group_rows": 20_000,
        "scale_rows": (10_000, 100_000),
        "scale_calls": 3,
        "scale_repeats": 1,
        "threads_epochs": 1,
        "threads_steps": 30,
        "threads_repeats": 1,
        "threads_timeout": 20,
    },
    "full": {
        "warmup": 3,
        "steps": 10,
        "proto_steps": 150,
        "repeats": 3,
        "predict_rows": 100_000,
        "partial_fit_calls": 20,
        "scale_groups": (10, 100, 1_000, 5_000, 10_000),
        "scale_group_rows": 50_000,
        "scale_rows": (10_000, 100_000, 1_000_000),
        "scale_calls": 5,
        "scale_repeats": 2,
        "threads_epochs": 2,
        "threads_steps": None,  # the default: about one pass over the rows
        "threads_repeats": 2,
        "threads_timeout": 60,
    },
}
STARTUP_LIMIT = 180  # seconds for a section-6 worker to import, load and warm up
SECTIONS = ("maml", "protonet", "predict", "partial_fit", "scale", "threads")
BUSY_LOOP = (
    "import numpy as np\n"
    "a = np.random.default_rng(0).random((256, 256))\n"
    "while True:\n"
    "    b = a @ a\n"
)


# ------------------------------------------------------------------ utilities
def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _ms(seconds):
    if seconds is None:
        return "–"
    return f"{1000 * seconds:.3g}" if seconds < 0.1 else f"{1000 * seconds:.0f}"


def _ratio(a, b):
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.2f}"


def _mib(value):
    return "–" if value is None else f"{value:.0f}"


def _quartiles(values):
    q1, q3 = np.percentile(values, [25, 75])
    return f"{_ms(q1)}–{_ms(q3)}"


def _peak_rss_mib():
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def _release_memory():
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


CAN_FORK = "fork" in mp.get_all_start_methods()
_MEMORY = {"base": None}  # the measured child's baseline, MiB


def memory_mark():
    """Start the memory measurement of the running child here.

    Called after warm-up: the pages a child touches first (shared library
    code, lazily built caches) are then not counted. Frees the heap, sets the
    peak RSS to the current RSS (Linux: ``/proc/self/clear_refs``) and takes
    it as the baseline; where that is not possible, the baseline stays the
    size at the fork.
    """
    _release_memory()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return
    _MEMORY["base"] = _peak_rss_mib()


def run_measured(fn, *args):
    """``fn(*args)`` in a forked child: its result and peak RSS increase (MiB).

    The increase is measured from the child's size at the fork, or from the
    last :func:`memory_mark` ``fn`` called. Without ``fork``, ``fn`` runs here
    and the memory is None.
    """
    if not CAN_FORK:
        return fn(*args), None
    _release_memory()
    sys.stdout.flush()
    sys.stderr.flush()
    context = mp.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)

    def child():
        try:
            _MEMORY["base"] = _peak_rss_mib()
            result = fn(*args)
            sender.send((True, result, _peak_rss_mib() - _MEMORY["base"]))
        except BaseException:
            sender.send((False, traceback.format_exc(), None))

    process = context.Process(target=child)
    process.start()
    sender.close()
    try:
        ok, result, memory = receiver.recv()
    except EOFError:
        process.join()
        raise RuntimeError(
            f"the measured child process died (exit code {process.exitcode})"
        ) from None
    finally:
        process.join()
        receiver.close()
    if not ok:
        raise RuntimeError("in the measured child process:\n" + result)
    return result, memory


def _git_commit():
    """The short commit, and whether ``skmeta/`` differs from it (read-only)."""
    root = Path(__file__).resolve().parent.parent

    def git(*command):
        return subprocess.run(
            ["git", *command], cwd=root, capture_output=True, text=True, timeout=10
        )

    try:
        commit = git("rev-parse", "--short", "HEAD").stdout.strip() or "unknown"
        # Plumbing: compares with the index's file stats, never writes it.
        changed = git("diff-index", "--quiet", "HEAD", "--", "skmeta").returncode
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if commit != "unknown" and changed == 1:
        commit += ", with uncommitted changes in skmeta/"
    return commit


def _version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def import_peers():
    """learn2learn and higher, or the reason each is missing."""
    peers, missing = {}, {}
    for name in ("learn2learn", "higher"):
        # learn2learn imports gym, which prints a deprecation notice.
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stderr(io.StringIO()),
            contextlib.redirect_stdout(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            try:
                peers[name] = __import__(name)
            except Exception as exc:  # ImportError, or a broken build
                missing[name] = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return peers, missing


def _quiet():
    warnings.filterwarnings("ignore", category=ConstantPredictorWarning)
    warnings.filterwarnings("ignore", message=".*give no query set.*")
    warnings.filterwarnings("ignore", message=".*No task has a class with 2 rows.*")


# ----------------------------------------------------------------------- data
def make_episode(n_tasks, seed, dtype=torch.float32):
    """A fixed meta-batch: 10 support and 30 query rows per task, 2 classes.

    Each task separates its classes along its own random direction. Rows are
    ordered by class, as skmeta's sampler orders them.
    """
    g = torch.Generator().manual_seed(seed)
    direction = torch.randn(n_tasks, 1, N_FEATURES, generator=g, dtype=torch.float64)

    def rows(per_class):
        y = torch.arange(N_CLASSES).repeat_interleave(per_class)
        y = y.expand(n_tasks, -1).contiguous()
        X = torch.randn(n_tasks, y.shape[1], N_FEATURES, generator=g).double()
        X = X + (2.0 * y - 1.0)[..., None] * direction
        return X.to(dtype), y

    support_X, support_y = rows(N_SHOTS)
    query_X, query_y = rows(N_QUERIES)
    return {
        "support_X": support_X,
        "support_y": support_y,
        "support_w": torch.ones(support_y.shape, dtype=dtype),
        "query_X": query_X,
        "query_y": query_y,
        "query_w": torch.ones(query_y.shape, dtype=dtype),
        "task": torch.arange(n_tasks),
    }


def make_group_rows(n_groups, rows_per_class, seed):
    """``n_groups`` groups with ``rows_per_class`` rows of each class."""
    rng = np.random.default_rng(seed)
    n = n_groups * N_CLASSES * rows_per_class
    group = np.repeat(np.arange(n_groups), N_CLASSES * rows_per_class)
    y = np.tile(np.repeat(np.arange(N_CLASSES), rows_per_class), n_groups)
    direction = rng.standard_normal((n_groups, N_FEATURES))
    X = (
        rng.standard_normal((n, N_FEATURES))
        + (2.0 * y - 1.0)[:, None] * direction[group]
    )
    return X.astype(np.float32), y, _group_names(n_groups)[group]


def _group_names(n_groups):
    width = len(str(max(n_groups - 1, 0)))
    return np.array([f"g{i:0{width}d}" for i in range(n_groups)])


def make_rows(n_rows, n_groups=None, *, group_sizes=None, seed=RANDOM_STATE):
    """Rows with 20 features, a label and a group name (str).

    Groups have equal sizes (``n_groups``) or the given ``group_sizes``; each
    shifts the features and tilts the decision function.
    """
    rng = np.random.default_rng(seed)
    if group_sizes is None:
        group = rng.permutation(np.arange(n_rows) % n_groups)
    else:
        n_groups = len(group_sizes)
        group = np.repeat(np.arange(n_groups), group_sizes)
        n_rows = len(group)
    X = rng.standard_normal((n_rows, N_FEATURES), dtype=np.float32)
    X += 0.5 * rng.standard_normal((n_groups, N_FEATURES), dtype=np.float32)[group]
    coef = rng.standard_normal(N_FEATURES, dtype=np.float32)
    bias = rng.standard_normal(n_groups, dtype=np.float32)
    noise = rng.standard_normal(n_rows, dtype=np.float32)
    y = (X @ coef + bias[group] + noise > 0).astype(np.int64)
    return X, y, _group_names(n_groups)[group]


def new_group_rows(i, seed=RANDOM_STATE):
    """10 rows (5 per class) of the never-seen group ``new<i>``."""
    rng = np.random.default_rng([seed, i])
    X = rng.standard_normal((10, N_FEATURES), dtype=np.float32)
    y = np.repeat(np.arange(N_CLASSES), 5)
    return X, y, np.full(10, f"new{i}")


# ------------------------------------------------------------------ contenders
def reference_state(hidden, seed=RANDOM_STATE):
    torch.manual_seed(seed)
    return MLP(N_FEATURES, N_CLASSES, hidden_units=(hidden, hidden)).state_dict()


def _cast(episode, dtype):
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in episode.items()}


def _mlp(hidden, state, dtype):
    module = MLP(N_FEATURES, N_CLASSES, hidden_units=(hidden, hidden))
    module.load_state_dict(state)
    return module.to(dtype)


class StepTimer(Callback):
    """Records ``time.perf_counter()`` at the start of every training batch.

    Starts the memory measurement before batch ``warmup`` and records the
    peak RSS at the end of training (before skmeta adapts every group).
    """

    def __init__(self, warmup=0):
        self.warmup = warmup

    def initialize(self):
        self.times = []
        self.peak = None
        return self

    def on_batch_begin(self, net, batch=None, training=None, **kwargs):
        if training:
            if len(self.times) == self.warmup:
                memory_mark()
            self.times.append(time.perf_counter())

    def on_train_end(self, net, **kwargs):
        self.peak = _peak_rss_mib()


def plain_maml_parameters():
    """Parameters that make skmeta's inner loop plain MAML.

    Plain SGD on the mean support loss, which the references run: a prior
    toward the initialisation, where the estimator has one, is switched off.
    """
    names = MAMLClassifier().get_params(deep=False)
    return {"prior_strength": 0.0} if "prior_strength" in names else {}


def maml_classifier(hidden, n_tasks, first_order, steps_per_epoch, **kwargs):
    return MAMLClassifier(
        **plain_maml_parameters(),
        module__hidden_units=(hidden, hidden),
        inner_steps=INNER_STEPS,
        inner_lr=INNER_LR,
        n_shots=N_SHOTS,
        n_queries=N_QUERIES,
        meta_batch_size=n_tasks,
        steps_per_epoch=steps_per_epoch,
        max_epochs=1,
        first_order=first_order,
        random_state=RANDOM_STATE,
        n_threads=1,
        **kwargs,
    )


PROTO_SHRINKAGE = 5.0


def fixed_proto_parameters():
    """Fixed shrinkage (and distance scale, where the estimator has one), the
    values the batched reference uses."""
    names = PrototypicalClassifier().get_params(deep=False)
    fixed = {"shrinkage": PROTO_SHRINKAGE}
    if "distance_scale" in names:
        fixed["distance_scale"] = 1.0
    return fixed


def proto_classifier(n_tasks, steps_per_epoch, **kwargs):
    return PrototypicalClassifier(
        **fixed_proto_parameters(),
        n_shots=N_SHOTS,
        n_queries=N_QUERIES,
        meta_batch_size=n_tasks,
        steps_per_epoch=steps_per_epoch,
        max_epochs=1,
        random_state=RANDOM_STATE,
        n_threads=1,
        **kwargs,
    )


class SkmetaBare:
    """skmeta's meta-objective on a fixed episode (``_episode_loss``)."""

    def __init__(self, clf, state, episode, dtype):
        self.clf = clf
        if state is not None:
            clf.module_.load_state_dict(state)
        clf.module_.to(dtype)
        clf._set_training(True)
        self.episode = _cast(episode, dtype)
        self.params = list(clf.module_.parameters())

    def meta_backward(self):
        loss, _ = self.clf._episode_loss(self.episode)
        loss.backward()
        return loss.detach()


class TorchFuncMAML:
    """``vmap`` over tasks of a ``torch.func.grad`` inner loop."""

    def __init__(self, hidden, state, episode, first_order, dtype):
        self.module = _mlp(hidden, state, dtype)
        self.episode = _cast(episode, dtype)
        self.first_order = first_order
        self.params = list(self.module.parameters())

    def meta_backward(self):
        module, first_order = self.module, self.first_order

        def support_loss(p, X, y):
            return F.cross_entropy(functional_call(module, p, (X,)), y)

        def query_loss(p, Xs, ys, Xq, yq):
            for _ in range(INNER_STEPS):
                g = grad(support_loss)(p, Xs, ys)
                if first_order:
                    g = {k: v.detach() for k, v in g.items()}
                p = {k: p[k] - INNER_LR * g[k] for k in p}
            return F.cross_entropy(functional_call(module, p, (Xq,)), yq)

        e = self.episode
        losses = vmap(query_loss, in_dims=(None, 0, 0, 0, 0))(
            dict(module.named_parameters()),
            e["support_X"],
            e["support_y"],
            e["query_X"],
            e["query_y"],
        )
        loss = losses.mean()
        loss.backward()
        return loss.detach()


class Learn2LearnMAML:
    """``learn2learn.algorithms.MAML``: clone and adapt per task."""

    def __init__(self, l2l, hidden, state, episode, first_order, dtype):
        self.module = _mlp(hidden, state, dtype)
        self.maml = l2l.algorithms.MAML(
            self.module, lr=INNER_LR, first_order=first_order
        )
        self.episode = _cast(episode, dtype)
        self.params = list(self.module.parameters())

    def meta_backward(self):
        e = self.episode
        n_tasks = len(e["support_X"])
        total = 0.0
        for t in range(n_tasks):
            learner = self.maml.clone()
            for _ in range(INNER_STEPS):
                support_logits = learner(e["support_X"][t])
                learner.adapt(F.cross_entropy(support_logits, e["support_y"][t]))
            total = total + F.cross_entropy(learner(e["query_X"][t]), e["query_y"][t])
        loss = total / n_tasks
        loss.backward()
        return loss.detach()


class HigherMAML:
    """``higher.innerloop_ctx`` per task."""

    def __init__(self, higher, hidden, state, episode, first_order, dtype):
        self.higher = higher
        self.module = _mlp(hidden, state, dtype)
        self.inner_opt = torch.optim.SGD(self.module.parameters(), lr=INNER_LR)
        self.episode = _cast(episode, dtype)
        self.first_order = first_order
        self.params = list(self.module.parameters())

    def meta_backward(self):
        e = self.episode
        n_tasks = len(e["support_X"])
        total = 0.0
        for t in range(n_tasks):
            with self.higher.innerloop_ctx(
                self.module,
                self.inner_opt,
                copy_initial_weights=False,
                track_higher_grads=not self.first_order,
            ) as (fmodel, diffopt):
                for _ in range(INNER_STEPS):
                    support_logits = fmodel(e["support_X"][t])
                    diffopt.step(F.cross_entropy(support_logits, e["support_y"][t]))
                loss = F.cross_entropy(fmodel(e["query_X"][t]), e["query_y"][t])
                loss = loss / n_tasks
                if self.first_order:
                    # The adapted weights are detached: their gradient is the
                    # first-order meta-gradient.
                    grads = torch.autograd.grad(loss, list(fmodel.fast_params))
                    for p, g in zip(self.params, grads, strict=True):
                        p.grad = g if p.grad is None else p.grad + g
                    loss = loss.detach()
            total = total + loss
        if not self.first_order:
            total.backward()
        return total.detach()


class ProtoReference:
    """A batched prototypical-network step, with skmeta's shrinkage."""

    def __init__(self, state, episode, shrinkage, dtype):
        self.module = EmbeddingMLP(N_FEATURES)
        self.module.load_state_dict(state)
        self.module.to(dtype)
        self.episode = _cast(episode, dtype)
        self.shrinkage = shrinkage
        self.params = list(self.module.parameters())

    def meta_backward(self):
        e = self.episode
        n_tasks, n_support = e["support_y"].shape
        rows = torch.cat([e["support_X"], e["query_X"]], 1)
        embedded = self.module(rows.flatten(0, 1)).unflatten(0, rows.shape[:2])
        support, query = embedded[:, :n_support], embedded[:, n_support:]
        onehot = F.one_hot(e["support_y"], N_CLASSES).to(embedded.dtype)
        sums = onehot.transpose(1, 2) @ support  # (tasks, classes, dim)
        counts = onehot.sum(1)  # (tasks, classes)
        pooled = sums.sum(0) / counts.sum(0)[:, None]
        kappa = self.shrinkage
        prototypes = (sums + kappa * pooled) / (counts + kappa)[..., None]
        distances = (
            (query**2).sum(-1, keepdim=True)
            - 2 * query @ prototypes.transpose(1, 2)
            + (prototypes**2).sum(-1)[:, None, :]
        )
        loss = F.cross_entropy(-distances.flatten(0, 1), e["query_y"].flatten())
        loss.backward()
        return loss.detach()


def time_steps(contender, warmup, steps):
    """Seconds of each of ``steps`` meta-steps, after ``warmup`` untimed ones."""
    optimizer = torch.optim.Adam(contender.params, lr=META_LR)
    times = []
    for i in range(warmup + steps):
        if i == warmup:
            memory_mark()
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        contender.meta_backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return {"times": times[warmup:]}


def time_fit_steps(make_clf, fit_data, warmup, steps):
    """Seconds between consecutive batches of ``fit``, after ``warmup``."""
    timer = StepTimer(warmup)
    clf = make_clf(warmup + steps + 1, callbacks=[("step_timer", timer)])
    X, y, groups = fit_data
    clf.fit(X, y, sensitive_features=groups)
    return {
        "times": list(np.diff(timer.times)[warmup:]),
        "memory": None if _MEMORY["base"] is None else timer.peak - _MEMORY["base"],
    }


def interleaved(blocks, repeats):
    """Each repeat runs every block once, in a forked child.

    Returns, per block, all timed steps and the median peak RSS increase, or
    the error of its first failure.
    """
    times = {name: [] for name in blocks}
    memory = {name: [] for name in blocks}
    errors = {}
    for _ in range(repeats):
        for name, block in blocks.items():
            if name in errors:
                continue
            try:
                out, mem = run_measured(block)
            except Exception as exc:
                errors[name] = str(exc).strip().splitlines()[-1]
                continue
            times[name] += out["times"]
            mem = out.get("memory", mem) if mem is not None else None
            if mem is not None:
                memory[name].append(mem)
    return {
        name: {
            "times": times[name],
            "median": statistics.median(times[name]) if times[name] else None,
            "memory": statistics.median(memory[name]) if memory[name] else None,
            "error": errors.get(name),
        }
        for name in blocks
    }


def _grads(contender):
    for p in contender.params:
        p.grad = None
    loss = contender.meta_backward()
    return float(loss), [p.grad.detach().clone() for p in contender.params]


def _relative_difference(grads, reference):
    norm = torch.sqrt(sum((g**2).sum() for g in reference))
    diff = max(
        float((a - b).abs().max()) for a, b in zip(grads, reference, strict=True)
    )
    return diff / float(norm)


# -------------------------------------------------------------- 1. MAML step
def maml_contenders(peers, hidden, state, episode, first_order, dtype, clf):
    """Factories of the contenders that take a fixed episode."""
    factories = {
        "skmeta (bare step)": lambda: SkmetaBare(clf, state, episode, dtype),
        "torch.func (vmap)": lambda: TorchFuncMAML(
            hidden, state, episode, first_order, dtype
        ),
    }
    if "learn2learn" in peers:
        factories["learn2learn"] = lambda: Learn2LearnMAML(
            peers["learn2learn"], hidden, state, episode, first_order, dtype
        )
    if "higher" in peers:
        factories["higher"] = lambda: HigherMAML(
            peers["higher"], hidden, state, episode, first_order, dtype
        )
    return factories


def maml_gradient_check(peers):
    hidden, n_tasks = SETTINGS["small"]
    state = reference_state(hidden)
    episode = make_episode(n_tasks, seed=1, dtype=torch.float64)
    fit_data = make_group_rows(n_tasks, ROWS_PER_CLASS, seed=RANDOM_STATE)
    rows, skmeta_grads, passed = [], {}, True
    for first_order in (False, True):
        clf = maml_classifier(hidden, n_tasks, first_order, 1)
        clf.fit(fit_data[0], fit_data[1], sensitive_features=fit_data[2])
        factories = maml_contenders(
            peers, hidden, state, episode, first_order, torch.float64, clf
        )
        reference = None
        for name, factory in factories.items():
            try:
                loss, grads = _grads(factory())
            except Exception as exc:
                rows.append([name, _order(first_order), "–", f"error: {exc}", "no"])
                passed = False
                continue
            if name == "skmeta (bare step)":
                reference = skmeta_grads[first_order] = grads
            if reference is None:
                rows.append([name, _order(first_order), f"{loss:.12f}", "–", "no"])
                passed = False
                continue
            rel = _relative_difference(grads, reference)
            ok = rel < CHECK_TOLERANCE
            passed &= ok
            rows.append(
                [name, _order(first_order), f"{loss:.12f}", f"{rel:.1e}", _yes(ok)]
            )
    print(
        f"\nGradient check (float64, small setting: hidden {hidden}, {n_tasks} "
        "tasks, same episode and initial weights): largest absolute difference "
        "of the meta-gradient to skmeta's, relative to the norm of skmeta's "
        f"gradient; passes below {CHECK_TOLERANCE:g}.\n"
    )
    print(
        markdown_table(
            ["contender", "order", "meta-loss", "max |diff| / ||grad||", "passes"],
            rows,
        )
    )
    if len(skmeta_grads) == 2:
        gap = _relative_difference(skmeta_grads[True], skmeta_grads[False])
        print(
            "\nFor scale: skmeta's first-order gradient differs from its "
            f"second-order one by {gap:.1e} on the same measure."
        )
    print(f"\nCheck {'passed' if passed else 'FAILED'}.")
    return passed


def _order(first_order):
    if first_order is None:
        return "–"
    return "first" if first_order else "second"


def _yes(ok):
    return "yes" if ok else "NO"


def section_maml(args, budget, peers, missing):
    print("\n## 1. MAML meta-step")
    for name, reason in missing.items():
        print(f"\n{name} not found ({reason}): its rows are skipped.")
    extra = "".join(f", {k}={v!r}" for k, v in plain_maml_parameters().items())
    print(
        "\nskmeta: MAMLClassifier(module__hidden_units=(h, h), "
        f"inner_steps={INNER_STEPS}, inner_lr={INNER_LR}, n_shots={N_SHOTS}, "
        f"n_queries={N_QUERIES}, meta_batch_size=<tasks>, first_order=..., "
        f"n_threads=1{extra}); settings (h, tasks): "
        + ", ".join(f"{k} {v}" for k, v in SETTINGS.items())
        + f". Each task: {N_CLASSES * N_SHOTS} support and "
        f"{N_CLASSES * N_QUERIES} query rows, {N_FEATURES} features, float32."
    )
    maml_gradient_check(peers)
    warmup, steps = budget["warmup"], budget["steps"]
    results = {}
    for size, (hidden, n_tasks) in SETTINGS.items():
        state = reference_state(hidden)
        episode = make_episode(n_tasks, seed=1)
        fit_data = make_group_rows(n_tasks, ROWS_PER_CLASS, seed=RANDOM_STATE)
        for first_order in (False, True):
            clf = maml_classifier(hidden, n_tasks, first_order, 1)
            clf.fit(fit_data[0], fit_data[1], sensitive_features=fit_data[2])

            def fit_block(h=hidden, n=n_tasks, fo=first_order, data=fit_data):
                return time_fit_steps(
                    lambda spe, **kw: maml_classifier(h, n, fo, spe, **kw),
                    data,
                    warmup,
                    steps,
                )

            blocks = {"skmeta (fit)": fit_block}
            factories = maml_contenders(
                peers, hidden, state, episode, first_order, torch.float32, clf
            )
            for name, factory in factories.items():
                blocks[name] = lambda f=factory: time_steps(f(), warmup, steps)
            results[size, first_order] = interleaved(blocks, args.repeats)
    _report_steps(
        results,
        "skmeta (fit)",
        f"Median time per meta-step ({args.repeats} repeats x {steps} steps after "
        f"{warmup} warm-up step(s), interleaved), interquartile range, and peak "
        "memory (increase of the peak RSS of the child process running the "
        "block, from the end of the warm-up steps; for skmeta (fit), to the "
        "end of training, before skmeta adapts every group).",
    )
    rows = []
    for (size, first_order), res in results.items():
        base = res["skmeta (fit)"]["median"]
        rows.append(
            [size, _order(first_order)]
            + [
                _ratio(res[name]["median"], base) if name in res else "not found"
                for name in (
                    "learn2learn",
                    "higher",
                    "torch.func (vmap)",
                    "skmeta (bare step)",
                )
            ]
        )
    print(
        "\nRatios of median step times (above 1: skmeta as driven by fit is faster):\n"
    )
    print(
        markdown_table(
            [
                "setting",
                "order",
                "learn2learn / skmeta (fit)",
                "higher / skmeta (fit)",
                "torch.func / skmeta (fit)",
                "skmeta bare / skmeta (fit)",
            ],
            rows,
        )
    )


def _report_steps(results, base_name, caption):
    rows = []
    for (size, first_order), res in results.items():
        base = res[base_name]["median"]
        for name, r in res.items():
            if r["error"] is not None:
                rows.append(
                    [size, _order(first_order), name, f"error: {r['error']}"]
                    + ["–"] * 4
                )
                continue
            rows.append(
                [
                    size,
                    _order(first_order),
                    name,
                    _ms(r["median"]),
                    _quartiles(r["times"]),
                    len(r["times"]),
                    _mib(r["memory"]),
                    _ratio(r["median"], base),
                ]
            )
    print(f"\n{caption}\n")
    print(
        markdown_table(
            [
                "setting",
                "order",
                "contender",
                "median ms/step",
                "IQR ms",
                "steps",
                "peak MiB",
                f"/ {base_name}",
            ],
            rows,
        )
    )


# ---------------------------------------------------------- 2. ProtoNet step
def section_protonet(args, budget):
    print("\n## 2. ProtoNet episode step")
    hidden, n_tasks = SETTINGS["small"]
    episode = make_episode(n_tasks, seed=1)
    fit_data = make_group_rows(n_tasks, ROWS_PER_CLASS, seed=RANDOM_STATE)
    torch.manual_seed(RANDOM_STATE)
    state = EmbeddingMLP(N_FEATURES).state_dict()

    def fitted():
        clf = proto_classifier(n_tasks, 1)
        return clf.fit(fit_data[0], fit_data[1], sensitive_features=fit_data[2])

    clf = fitted()
    shrinkage = PROTO_SHRINKAGE
    # Check in float64.
    loss_s, grads_s = _grads(SkmetaBare(fitted(), state, episode, torch.float64))
    loss_r, grads_r = _grads(ProtoReference(state, episode, shrinkage, torch.float64))
    rel = _relative_difference(grads_r, grads_s)
    fixed = ", ".join(f"{k}={v!r}" for k, v in fixed_proto_parameters().items())
    print(
        f"\nskmeta: PrototypicalClassifier({fixed}, n_shots={N_SHOTS}, "
        f"n_queries={N_QUERIES}, meta_batch_size={n_tasks}, n_threads=1), "
        "default EmbeddingMLP.\n"
        f"\nCheck (float64, {n_tasks} tasks, same episode and weights, "
        f"shrinkage={shrinkage:g}): meta-loss skmeta {loss_s:.12f}, reference "
        f"{loss_r:.12f}; max |gradient difference| / ||skmeta's gradient|| = "
        f"{rel:.1e} ({'passed' if rel < CHECK_TOLERANCE else 'FAILED'})."
    )
    warmup, steps = budget["warmup"], budget["proto_steps"]
    blocks = {
        "skmeta (fit)": lambda: time_fit_steps(
            lambda spe, **kw: proto_classifier(n_tasks, spe, **kw),
            fit_data,
            warmup,
            steps,
        ),
        "skmeta (bare step)": lambda: time_steps(
            SkmetaBare(clf, state, episode, torch.float32), warmup, steps
        ),
        "reference (batched)": lambda: time_steps(
            ProtoReference(state, episode, shrinkage, torch.float32), warmup, steps
        ),
    }
    results = {("small", None): interleaved(blocks, args.repeats)}
    _report_steps(
        results,
        "reference (batched)",
        f"EmbeddingMLP 20-{hidden}-32, {n_tasks} tasks; median time per step "
        f"({args.repeats} repeats x {steps} steps after {warmup} warm-up), "
        "interquartile range, peak memory of the block's child process.",
    )
    res = {name: r["median"] for name, r in results["small", None].items()}
    fit, bare, ref = (
        res["skmeta (fit)"],
        res["skmeta (bare step)"],
        res["reference (batched)"],
    )
    print(
        f"\nRatios: skmeta (fit) / reference {_ratio(fit, ref)}; skmeta (bare "
        f"step) / reference {_ratio(bare, ref)}; skmeta (fit) / skmeta (bare "
        f"step) {_ratio(fit, bare)}."
    )


# ---------------------------------------------------------------- 3. predict
def _median_time(fn, repeats, warmup=1):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def section_predict(args, budget):
    n_rows, n_groups = budget["predict_rows"], 10
    print(f"\n## 3. Prediction ({n_rows:,} rows, {n_groups} groups)")
    X, y, groups = make_rows(n_rows, n_groups)
    fit_kw = dict(max_epochs=1, steps_per_epoch=20, n_threads=1)
    maml = MAMLClassifier(random_state=RANDOM_STATE, **fit_kw)
    maml.fit(X, y, sensitive_features=groups)
    proto = PrototypicalClassifier(random_state=RANDOM_STATE, **fit_kw)
    proto.fit(X, y, sensitive_features=groups)
    torch.manual_seed(RANDOM_STATE)
    net = NeuralNetClassifier(
        MLP,
        module__n_features_in=N_FEATURES,
        module__n_classes=N_CLASSES,
        criterion=nn.CrossEntropyLoss,
        max_epochs=1,
        train_split=None,
        verbose=0,
    ).fit(X[:10_000], y[:10_000])
    big_batch = copy.deepcopy(net).set_params(batch_size=65_536)
    lr = LogisticRegression().fit(X[:10_000], y[:10_000])
    module = copy.deepcopy(net.module_).eval()

    def plain_torch():
        with torch.inference_mode():
            return module(torch.from_numpy(X)).argmax(1).numpy()

    def input_checks(clf):
        if validate_predict_input is None:
            return None
        return lambda: validate_predict_input(clf, X, groups, None)

    contenders = {
        "MAMLClassifier.predict": (
            lambda: maml.predict(X, sensitive_features=groups),
            input_checks(maml),
        ),
        "PrototypicalClassifier.predict": (
            lambda: proto.predict(X, sensitive_features=groups),
            input_checks(proto),
        ),
        "skorch NeuralNetClassifier (batch_size=128)": (
            lambda: net.predict(X),
            None,
        ),
        "skorch NeuralNetClassifier (batch_size=65536)": (
            lambda: big_batch.predict(X),
            None,
        ),
        "plain torch: MLP on all rows, argmax": (plain_torch, None),
        "LogisticRegression": (lambda: lr.predict(X), None),
    }
    repeats = max(3, args.repeats)
    times, checks = {}, {}
    for name, (fn, check) in contenders.items():
        times[name] = _median_time(fn, repeats)
        if check is not None:
            checks[name] = _median_time(check, repeats)
    ref_skorch = times["skorch NeuralNetClassifier (batch_size=128)"]
    ref_lr = times["LogisticRegression"]
    rows = [
        [
            name,
            _ms(t),
            f"{n_rows / t:,.0f}",
            _ms(checks.get(name)),
            _ratio(t, ref_skorch),
            _ratio(t, ref_lr),
        ]
        for name, t in times.items()
    ]
    print(
        f"\nMedian of {repeats} calls after one warm-up; one torch thread. skmeta: "
        "default sizes (MLP 20-64-2, EmbeddingMLP 20-64-32), fitted 1 epoch of "
        "20 meta-batches; `sensitive_features` are str labels. skorch: skmeta's "
        "MLP, 1 epoch on 10,000 rows. The input-check column is "
        "`validate_predict_input` alone (included in the total).\n"
    )
    print(
        markdown_table(
            [
                "predictor",
                "ms",
                "rows/s",
                "of which input checks, ms",
                "/ skorch (128)",
                "/ LogisticRegression",
            ],
            rows,
        )
    )


# ------------------------------------------------------------ 4. partial_fit
def partial_fit_latency(clf, n_calls, offset=0):
    times = []
    for i in range(n_calls):
        X, y, g = new_group_rows(offset + i)
        start = time.perf_counter()
        clf.partial_fit(X, y, sensitive_features=g)
        times.append(time.perf_counter() - start)
    return times


# The models of the latency section (and of the scripts that time parts of
# a new group's call): one epoch of 20 meta-batches, one torch thread.
LATENCY_FIT = dict(max_epochs=1, steps_per_epoch=20, n_threads=1)


def latency_rows():
    """The latency section's data: 10,000 groups of 5 to 10 rows, and the
    same number of rows in 10 groups (``{n_groups: (X, y, groups)}``)."""
    sizes = np.random.default_rng(RANDOM_STATE).integers(5, 11, size=10_000)
    return {
        10: make_rows(int(sizes.sum()), 10),
        10_000: make_rows(0, group_sizes=sizes),
    }


def section_partial_fit(args, budget):
    n_calls = budget["partial_fit_calls"]
    print("\n## 4. New-group partial_fit latency (10 rows)")
    datasets = latency_rows()
    fit_kw = LATENCY_FIT
    rows, medians = [], {}
    # ProtoNet with head="logistic" and head="prototypes" too, at 10 groups:
    # what choosing each group's head adds to a new group's call (the default
    # head="auto" gives a head only to groups of head_min_rows_ rows).
    contenders = [
        ("MAMLClassifier", MAMLClassifier, {}, datasets),
        ("PrototypicalClassifier", PrototypicalClassifier, {}, datasets),
        (
            "PrototypicalClassifier, head='logistic'",
            PrototypicalClassifier,
            {"head": "logistic"},
            {10: datasets[10]},
        ),
        (
            "PrototypicalClassifier, head='prototypes'",
            PrototypicalClassifier,
            {"head": "prototypes"},
            {10: datasets[10]},
        ),
    ]
    for name, klass, kwargs, data in contenders:
        for n_groups, (X, y, groups) in data.items():
            clf = klass(random_state=RANDOM_STATE, **fit_kw, **kwargs)
            clf.fit(X, y, sensitive_features=groups)
            partial_fit_latency(clf, 1, offset=10_000)  # warm-up
            times = partial_fit_latency(clf, n_calls)
            medians[name, n_groups] = statistics.median(times)
            rows.append(
                [
                    name,
                    f"{n_groups:,}",
                    f"{len(y):,}",
                    _ms(statistics.median(times)),
                    _ms(min(times)),
                    _ms(max(times)),
                ]
            )
            del clf
    print(
        f"\n{n_calls} calls per model, each with 10 rows (5 per class) of a new "
        "group; models fitted 1 epoch of 20 meta-batches, default sizes, "
        f"n_threads=1. Both data sets have {len(datasets[10][1]):,} rows.\n"
    )
    print(
        markdown_table(
            ["estimator", "groups known", "rows", "median ms", "min ms", "max ms"],
            rows,
        )
    )
    print(
        "\nRatio 10,000 groups / 10 groups: "
        + "; ".join(
            f"{k} {_ratio(medians[k, 10_000], medians[k, 10])}"
            for k in ("MAMLClassifier", "PrototypicalClassifier")
        )
        + ". ProtoNet's head='logistic' / head='prototypes', 10 groups: "
        + _ratio(
            medians["PrototypicalClassifier, head='logistic'", 10],
            medians["PrototypicalClassifier, head='prototypes'", 10],
        )
        + "."
    )


# ------------------------------------------------------------------- 5. scale
# The scale section's estimator parameters beyond its defaults (--no-heads:
# no per-group logistic head, so no per-group cross-validation in fit).
SCALE_PARAMS = {}
NO_HEADS = {
    "MAMLClassifier": {"head": "none"},
    "PrototypicalClassifier": {"head": "prototypes"},
}


def _scale_child(klass, X, y, groups, n_calls):
    """Fit here; predict and partial_fit each in a forked grandchild.

    Each measurement starts after a warm-up of the same code (a fit on 400
    rows, a predict of 1,000 rows, one partial_fit call).
    """
    params = SCALE_PARAMS.get(klass.__name__, {})
    warm = klass(max_epochs=1, steps_per_epoch=2, n_threads=1, random_state=0, **params)
    warm.fit(X[:400], y[:400], sensitive_features=groups[:400])
    del warm
    memory_mark()
    clf = klass(max_epochs=1, n_threads=1, random_state=RANDOM_STATE, **params)
    start = time.perf_counter()
    clf.fit(X, y, sensitive_features=groups)
    fit_s = time.perf_counter() - start
    steps = len(clf.history[-1, "batches"])

    def predict():
        clf.predict(X[:1000], sensitive_features=groups[:1000])
        memory_mark()
        start = time.perf_counter()
        clf.predict(X, sensitive_features=groups)
        return time.perf_counter() - start

    def partial_fit():
        partial_fit_latency(clf, 1, offset=10_000)
        memory_mark()
        return partial_fit_latency(clf, n_calls)

    predict_s, predict_mem = run_measured(predict)
    pf_times, pf_mem = run_measured(partial_fit)
    return {
        "fit_s": fit_s,
        "steps": steps,
        "predict_s": predict_s,
        "predict_mem": predict_mem,
        "pf_s": statistics.median(pf_times),
        "pf_mem": pf_mem,
    }


def _fastest(outs):
    """Smallest time and largest memory of each figure over repeated runs."""
    ok = [o for o in outs if "error" not in o]
    if not ok:
        return outs[0]
    best = {}
    for key in ok[0]:
        values = [o[key] for o in ok if o[key] is not None]
        if not values:
            best[key] = None
        elif key.endswith("_mem"):
            best[key] = max(values)
        else:
            best[key] = min(values)
    return best


def section_scale(args, budget):
    print("\n## 5. Scale: groups and rows")
    group_rows = budget["scale_group_rows"]
    configs = [("groups", g, group_rows) for g in budget["scale_groups"]]
    configs += [("rows", 10, n) for n in budget["scale_rows"]]
    n_calls, repeats = budget["scale_calls"], budget["scale_repeats"]
    runs = {}
    for _ in range(repeats):
        for sweep, n_groups, n_rows in configs:
            X, y, groups = make_rows(n_rows, n_groups)
            for klass in (MAMLClassifier, PrototypicalClassifier):
                key = sweep, klass.__name__, n_groups, n_rows
                try:
                    out, fit_mem = run_measured(
                        _scale_child, klass, X, y, groups, n_calls
                    )
                except Exception as exc:
                    out, fit_mem = {"error": str(exc).strip().splitlines()[-1]}, None
                out["fit_mem"] = fit_mem
                runs.setdefault(key, []).append(out)
            del X, y, groups
    results = {key: _fastest(outs) for key, outs in runs.items()}
    if SCALE_PARAMS:
        print(
            "\nWith `--no-heads`: "
            + ", ".join(f"{name} {params}" for name, params in SCALE_PARAMS.items())
            + " (no per-group head, so no per-group cross-validation in fit)."
        )
    print(
        "\nDefault sizes, `max_epochs=1` with the default `steps_per_epoch` "
        "(about one pass over the rows: max(10, rows / 320) meta-batches), "
        f"n_threads=1. predict: all training rows. partial_fit: median of "
        f"{n_calls} calls, 10 rows of a new group each. Times: the smallest of "
        f"{repeats} run(s) of the whole sweep; memory: the largest. Time per row in "
        "microseconds; x base: ratio to the first line of the sweep. Peak MiB: "
        "increase of the peak RSS during fit (with validation, the episode "
        "loader and the adaptation to every group), during predict, and "
        "during the partial_fit calls, each in its own child process after a "
        "warm-up call of the same code.\n"
    )
    for sweep in ("groups", "rows"):
        rows = []
        for klass in ("MAMLClassifier", "PrototypicalClassifier"):
            base = None
            for (s, k, n_groups, n_rows), r in results.items():
                if s != sweep or k != klass:
                    continue
                if "error" in r:
                    rows.append([k, f"{n_groups:,}", f"{n_rows:,}", r["error"]])
                    continue
                fit_us = 1e6 * r["fit_s"] / n_rows
                pred_us = 1e6 * r["predict_s"] / n_rows
                if base is None:
                    base = (fit_us, pred_us, r["pf_s"])
                rows.append(
                    [
                        k,
                        f"{n_groups:,}",
                        f"{n_rows:,}",
                        r["steps"],
                        f"{r['fit_s']:.2f}",
                        f"{fit_us:.1f}",
                        _ratio(fit_us, base[0]),
                        _mib(r["fit_mem"]),
                        f"{pred_us:.2f}",
                        _ratio(pred_us, base[1]),
                        _mib(r["predict_mem"]),
                        _ms(r["pf_s"]),
                        _ratio(r["pf_s"], base[2]),
                        _mib(r["pf_mem"]),
                    ]
                )
        title = (
            f"number of groups ({group_rows:,} rows)"
            if sweep == "groups"
            else "number of rows (10 groups)"
        )
        print(f"\nAgainst the {title}:\n")
        print(
            markdown_table(
                [
                    "estimator",
                    "groups",
                    "rows",
                    "fit steps",
                    "fit s",
                    "fit µs/row",
                    "x base",
                    "fit peak MiB",
                    "predict µs/row",
                    "x base",
                    "predict peak MiB",
                    "partial_fit ms",
                    "x base",
                    "partial_fit peak MiB",
                ],
                rows,
            )
        )


# ----------------------------------------------------------------- 6. threads
class ThreadsSeen(Callback):
    """Records torch's thread count when training starts (inside ``fit``)."""

    def on_train_begin(self, net, **kwargs):
        self.n_threads = torch.get_num_threads()


# The fast one first: a run stopped by the time limit still times it.
THREADS_MODELS = (PrototypicalClassifier, MAMLClassifier)
# n_threads=1 first: a stalled n_threads=None run cannot hide it.
THREADS_SETTINGS = (1, None)


def threads_worker(max_epochs, steps_per_epoch):
    """Fit and predict both estimators on Adult with each ``n_threads``.

    Prints JSON lines, each flushed, so that a run stopped by the time limit
    still tells how far it got: one when the data is ready and both
    estimators are warmed up on a few rows, one when each setting starts,
    and one per model.
    """
    from skmeta.datasets import load_adult

    _quiet()
    adult = load_adult()
    train, test = adult.split == "train", adult.split == "test"
    sensitive = adult.sensitive_features
    groups = sensitive["sex"].astype(str) + " " + sensitive["race"].astype(str)
    groups = groups.to_numpy()
    scaler = StandardScaler().fit(adult.data[train])
    X_train, X_test = (
        scaler.transform(adult.data[train]),
        scaler.transform(adult.data[test]),
    )
    # Warm-up: the first fit of a process also imports and initialises
    # parts of torch (and its thread pool); that is not what is measured.
    for n_threads in THREADS_SETTINGS:
        for klass in THREADS_MODELS:
            warm = klass(max_epochs=1, steps_per_epoch=1, n_threads=n_threads)
            warm.fit(X_train[:200], adult.target[train][:200])
            warm.predict(X_test[:100])
    print(json.dumps({"ready": True}), flush=True)
    for n_threads in THREADS_SETTINGS:
        print(json.dumps({"setting": str(n_threads)}), flush=True)
        for klass in THREADS_MODELS:
            seen = ThreadsSeen()
            start = time.perf_counter()
            model = klass(
                max_epochs=max_epochs,
                steps_per_epoch=steps_per_epoch,
                random_state=RANDOM_STATE,
                n_threads=n_threads,
                callbacks=[("threads_seen", seen)],
            )
            model.fit(X_train, adult.target[train], sensitive_features=groups[train])
            model.predict(X_test, sensitive_features=groups[test])
            record = {
                "model": klass.__name__,
                "seconds": time.perf_counter() - start,
                "threads": seen.n_threads,
            }
            print(json.dumps(record), flush=True)


def _threads_run(max_epochs, steps_per_epoch, timeout):
    """One worker process: ``{n_threads: {model: time}}``.

    A time is ``(seconds, "=")``, or ``(bound, ">")`` for the model the time
    limit stopped, or missing when it never started. Each setting may run
    ``timeout`` seconds from its start; the worker's start (imports, data,
    warm-up) may take ``STARTUP_LIMIT`` seconds.
    """
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(name, None)
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--threads-worker",
        "--threads-epochs",
        str(max_epochs),
    ]
    if steps_per_epoch is not None:
        command += ["--threads-steps", str(steps_per_epoch)]
    results = {n: {"threads": None} for n in THREADS_SETTINGS}
    with tempfile.TemporaryFile("w+") as errors:
        proc = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=errors, text=True
        )
        lines = queue.Queue()

        def read():
            for line in proc.stdout:
                lines.put((time.monotonic(), line))
            lines.put((time.monotonic(), None))

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + STARTUP_LIMIT
        setting, last, timed_out = None, None, False
        while True:
            try:
                received, line = lines.get(timeout=max(deadline - time.monotonic(), 0))
            except queue.Empty:
                timed_out = True
                proc.kill()
                break
            if line is None:
                break
            if not line.startswith("{"):
                continue
            record = json.loads(line)
            if "setting" in record:
                setting = (
                    None if record["setting"] == "None" else int(record["setting"])
                )
                last, deadline = received, received + timeout
            elif "model" in record:
                results[setting][record["model"]] = (record["seconds"], "=")
                results[setting]["threads"] = record["threads"]
                last = received
        proc.wait()
        errors.seek(0)
        message = (errors.read().strip().splitlines() or ["?"])[-1]
    if timed_out and setting is None and last is None:
        return {"error": f"start (imports, data, warm-up) over {STARTUP_LIMIT} s"}
    if timed_out:
        for klass in THREADS_MODELS:
            if klass.__name__ not in results[setting]:
                results[setting][klass.__name__] = (deadline - last, ">")
                break
    elif proc.returncode != 0:
        return {"error": message}
    return results


def _bounded_median(values):
    """Median of ``(value, flag)`` pairs; ``">"`` if any is a lower bound."""
    if not values or any(v is None or v[0] is None for v in values):
        return None
    flag = ">" if any(f == ">" for _, f in values) else "="
    return statistics.median(v for v, _ in values), flag


def _bounded_sum(values):
    if any(v is None for v in values):
        return None
    flag = ">" if any(f == ">" for _, f in values) else "="
    return sum(v for v, _ in values), flag


def _fmt_bounded(value):
    if value is None:
        return "–"
    return ("> " if value[1] == ">" else "") + f"{value[0]:.2f}"


def _bounded_ratio(a, b):
    if a is None or b is None or b[0] == 0:
        return "–"
    prefix = {("=", "="): "", (">", "="): "> ", ("=", ">"): "< "}.get((a[1], b[1]))
    return "?" if prefix is None else f"{prefix}{a[0] / b[0]:.2f}"


@contextlib.contextmanager
def busy_load(n_procs):
    """``n_procs`` processes multiplying numpy matrices on one BLAS thread."""
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = "1"
    procs = [
        subprocess.Popen([sys.executable, "-c", BUSY_LOOP], env=env)
        for _ in range(n_procs)
    ]
    try:
        time.sleep(1.0)  # let them start
        yield
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()


def demo_seconds(threads):
    """Wall time of ``python -m skmeta --quick --quiet`` (``--threads``)."""
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(name, None)
    command = [sys.executable, "-m", "skmeta", "--quick", "--quiet"]
    if threads is not None:
        command += ["--threads", str(threads)]
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def section_threads(args, budget):
    max_epochs, steps = budget["threads_epochs"], budget["threads_steps"]
    repeats, timeout = budget["threads_repeats"], args.threads_timeout
    print("\n## 6. Threads, with and without load")
    runs, loads, demo = {}, {}, {}
    cores = os.cpu_count() or 1
    for loaded in (False, True):
        context = busy_load(args.load_procs) if loaded else contextlib.nullcontext()
        with context:
            loads[loaded] = os.getloadavg()[0]
            for threads in (None, cores):
                demo[threads, loaded] = statistics.median(
                    demo_seconds(threads) for _ in range(repeats)
                )
            for _ in range(repeats):
                out = _threads_run(max_epochs, steps, timeout)
                for n_threads in THREADS_SETTINGS:
                    runs.setdefault((n_threads, loaded), []).append(
                        out if "error" in out else out[n_threads]
                    )
    length = f"max_epochs={max_epochs}" + (
        "" if steps is None else f", steps_per_epoch={steps}"
    )
    print(
        f"\nFit ({length}) and predict of PrototypicalClassifier, then "
        "MAMLClassifier, on Adult (32,561 training rows, 10 sex x race groups, "
        "16,281 test rows). Each run is a fresh process without "
        "OMP_NUM_THREADS (torch's default threads), which times n_threads=1, "
        "then n_threads=None, after a warm-up fit of each on 200 rows; each "
        f"setting is stopped {timeout} s after it starts (a time marked > is a "
        f"lower bound). Load: {args.load_procs} process(es) multiplying "
        "256x256 numpy matrices on one BLAS thread. Median of "
        f"{repeats} run(s); seconds of fit + predict. torch threads: inside "
        "fit. Load avg: the machine's 1-minute load average when the "
        "condition started.\n"
    )
    rows, totals = [], {}
    for (n_threads, loaded), outs in runs.items():
        setting = "None (torch default)" if n_threads is None else str(n_threads)
        errors = [o["error"] for o in outs if "error" in o]
        if errors:
            rows.append(
                [setting, "yes" if loaded else "no", "–", errors[0], "–", "–"]
                + [f"{loads[loaded]:.2f}"]
            )
            continue
        times = [
            _bounded_median([o.get(k.__name__) for o in outs]) for k in THREADS_MODELS
        ]
        totals[n_threads, loaded] = _bounded_sum(times)
        threads = next((o["threads"] for o in outs if o["threads"]), "–")
        rows.append(
            [setting, "yes" if loaded else "no", threads]
            + [_fmt_bounded(t) for t in times]
            + [_fmt_bounded(totals[n_threads, loaded]), f"{loads[loaded]:.2f}"]
        )
    print(
        markdown_table(
            [
                "n_threads",
                "loaded",
                "torch threads in fit",
                "ProtoNet s",
                "MAML s",
                "total s",
                "load avg (1 min)",
            ],
            rows,
        )
    )
    ratios = []
    for n_threads in (None, 1):
        ratio = _bounded_ratio(
            totals.get((n_threads, True)), totals.get((n_threads, False))
        )
        ratios.append(f"n_threads={n_threads}: loaded / unloaded {ratio}")
    for loaded in (False, True):
        ratio = _bounded_ratio(totals.get((None, loaded)), totals.get((1, loaded)))
        ratios.append(
            f"{'loaded' if loaded else 'unloaded'}: n_threads=None / n_threads=1 "
            f"{ratio}"
        )
    print("\nRatios of total times: " + "; ".join(ratios) + ".")
    print(
        "\nThe demo, `python -m skmeta --quick --quiet` (its default threads: "
        f"n_threads='auto', one for these networks; and `--threads {cores}`, "
        "torch's default count here), in a fresh process, median of "
        f"{repeats} run(s), seconds:\n"
    )
    demo_rows = []
    for threads in (None, cores):
        name = "default (auto)" if threads is None else f"--threads {threads}"
        unloaded, loaded = demo[threads, False], demo[threads, True]
        demo_rows.append(
            [name, f"{unloaded:.1f}", f"{loaded:.1f}", f"{loaded / unloaded:.2f}"]
        )
    print(
        markdown_table(
            ["threads", "unloaded s", "loaded s", "loaded / unloaded"], demo_rows
        )
    )


# ------------------------------------------------------------------------ main
def _parse_sections(text, parser):
    chosen = []
    for item in (s.strip() for s in text.split(",")):
        if not item:
            continue
        if item.isdigit() and 1 <= int(item) <= len(SECTIONS):
            item = SECTIONS[int(item) - 1]
        if item not in SECTIONS:
            parser.error(f"unknown section {item!r}; choose from {list(SECTIONS)}")
        chosen.append(item)
    return [s for s in SECTIONS if s in chosen]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer steps and sizes: a smoke run of a few minutes",
    )
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help="comma-separated names or numbers 1-6 (default: all)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="interleaved blocks per contender, predict calls (2 quick, 3 full)",
    )
    parser.add_argument(
        "--skip-threads", action="store_true", help="skip section 6 (threads)"
    )
    parser.add_argument(
        "--load-procs",
        type=int,
        default=1,
        help="busy processes of the loaded condition in section 6",
    )
    parser.add_argument(
        "--threads-timeout",
        type=int,
        default=None,
        help="seconds after which a section-6 run is stopped (20 quick, 60 full)",
    )
    parser.add_argument(
        "--no-heads",
        action="store_true",
        help="section 5 without the per-group heads (MAML head='none', "
        "ProtoNet head='prototypes')",
    )
    parser.add_argument("--threads-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--threads-steps", type=int, default=None, help=argparse.SUPPRESS
    )
    parser.add_argument("--threads-epochs", type=int, default=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads_worker:
        threads_worker(args.threads_epochs, args.threads_steps)
        return
    budget_name = "quick" if args.quick else "full"
    budget = BUDGETS[budget_name]
    if args.repeats is None:
        args.repeats = budget["repeats"]
    if args.threads_timeout is None:
        args.threads_timeout = budget["threads_timeout"]
    sections = _parse_sections(args.sections, parser)
    if args.no_heads:
        SCALE_PARAMS.update(NO_HEADS)
    if args.skip_threads and "threads" in sections:
        sections.remove("threads")

    _quiet()
    torch.set_num_threads(1)
    peers, missing = import_peers()
    found = ", ".join(
        f"{name} {_version(name)}" + (" found" if name in peers else " NOT found")
        for name in ("learn2learn", "higher")
    )
    omp = os.environ.get("OMP_NUM_THREADS")
    command = ("" if omp is None else f"OMP_NUM_THREADS={omp} ") + " ".join(
        ["python", *map(shlex.quote, sys.argv)]
    )
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    print(
        f"# bench_speed ({budget_name}) {datetime.datetime.now():%Y-%m-%d %H:%M}\n\n"
        f"skmeta {skmeta.__version__} (commit {_git_commit()}), torch "
        f"{torch.__version__}, skorch {skorch.__version__}, scikit-learn "
        f"{sklearn.__version__}, numpy {np.__version__}, Python "
        f"{platform.python_version()} on {platform.machine()}; torch threads "
        f"{torch.get_num_threads()} (set; section 6 varies them), "
        f"OMP_NUM_THREADS={omp or 'unset'}; CPUs: {os.cpu_count()} "
        f"({usable} usable); load average at start "
        f"{', '.join(f'{v:.2f}' for v in os.getloadavg())}.\n\n"
        f"Peers: {found}. Memory: "
        + (
            "peak RSS increase of a forked child process per measured block, "
            "after its warm-up."
            if CAN_FORK
            else "not measured (no fork on this platform)."
        )
        + f" Sections: {', '.join(sections)}; repeats {args.repeats}.\n\n"
        f"Command: `{command}`"
    )
    start = time.perf_counter()
    for name in sections:
        t0 = time.perf_counter()
        if name == "maml":
            section_maml(args, budget, peers, missing)
        elif name == "protonet":
            section_protonet(args, budget)
        elif name == "predict":
            section_predict(args, budget)
        elif name == "partial_fit":
            section_partial_fit(args, budget)
        elif name == "scale":
            section_scale(args, budget)
        elif name == "threads":
            section_threads(args, budget)
        print(f"\n({name}: {time.perf_counter() - t0:.0f} s)")
    print(f"\nTotal wall time: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
