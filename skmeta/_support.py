"""The support store: the rows each task adapts to, bounded per class.

After meta-training, every task's state (MAML: adapted parameters,
ProtoNet: prototypes) is computed from the rows kept here, and
``partial_fit`` adds rows. Rows given with a task adapt that task only; the
rows of ``fit`` and the rows given without a task form the *pooled* support
set, which serves unknown tasks.

What is kept is bounded: at most ``size`` rows per class of each task, and
as many per class of the pooled set. Beyond that, the rows kept are a
uniform random sample of every row seen for that class and task (reservoir
sampling), so memory, pickles and the cost of adapting stay bounded however
many rows arrive. The summed weight of each class (which gives the class
priors) counts every row, kept or not.
"""

import numpy as np
import scipy.sparse as sp
import torch

__all__ = ["RowStore", "SupportSet"]

# Key of the per-state share of the own rows (adaptation_weight_) in the
# estimators' states_, whose row 0 is the pooled state and row t + 1 task t.
_WEIGHT = "_weight"
# Rows evaluated per chunk at prediction (bounds the memory of one call), and
# the most floats of rows (rows times columns) such a chunk holds: up to 256
# columns a chunk is _PREDICT_CHUNK rows, beyond it has fewer, so that the
# memory of prediction and adaptation does not grow with the columns (wide
# one-hot data).
_PREDICT_CHUNK = 65536
_CHUNK_FLOATS = _PREDICT_CHUNK * 256


def chunk_rows(n_features):
    """Rows per chunk of ``n_features`` columns: ``_PREDICT_CHUNK``, or fewer
    where they would hold more than ``_CHUNK_FLOATS`` floats (at least 1)."""
    return max(1, min(_PREDICT_CHUNK, _CHUNK_FLOATS // max(1, n_features)))


class RowStore:
    """Rows under integer keys, at most ``size`` per (key, class).

    Parameters
    ----------
    n_features : int
    n_classes : int
    size : int
        Most rows kept per (key, class).
    rng : numpy.random.Generator
        Draws which rows are kept once a (key, class) is full.
    """

    def __init__(self, n_features, n_classes, size, rng):
        self.n_classes = n_classes
        self.size = size
        self.rng = rng
        self.n = 0
        self.X = np.empty((0, n_features), dtype=np.float32)
        self.y = np.empty(0, dtype=np.int64)
        self.weight = np.empty(0, dtype=np.float32)
        self.group = np.empty(0, dtype=np.int64)
        self.key = np.empty(0, dtype=np.int64)
        # Rows seen per (key, class), kept or not: {cell: count}.
        self.seen = {}

    def _grow(self, extra):
        """Make room for ``extra`` more rows (capacity doubles)."""
        need = self.n + extra
        if need <= len(self.y):
            return
        cap = max(need, 2 * len(self.y), 64)
        for name in ("X", "y", "weight", "group", "key"):
            old = getattr(self, name)
            new = np.zeros((cap, *old.shape[1:]), dtype=old.dtype)
            new[: self.n] = old[: self.n]
            setattr(self, name, new)

    def _write(self, slots, X, y, w, g, keys):
        X = X.toarray() if sp.issparse(X) else X  # only the rows kept
        self.X[slots], self.y[slots], self.weight[slots] = X, y, w
        self.group[slots], self.key[slots] = g, keys

    def add(self, X, y, w, g, keys):
        """Add rows; a full (key, class) keeps a uniform sample of all seen."""
        if not len(y):
            return
        cells = keys * self.n_classes + y
        unique, inverse, counts = np.unique(
            cells, return_inverse=True, return_counts=True
        )
        seen = np.array([self.seen.get(int(c), 0) for c in unique], dtype=np.int64)
        for c, s, k in zip(
            unique.tolist(), seen.tolist(), counts.tolist(), strict=True
        ):
            self.seen[c] = s + k
        fits = (seen + counts <= self.size)[inverse]
        # Rows of cells that stay within the bound are appended at once.
        n_fit = int(fits.sum())
        self._grow(n_fit)
        slots = np.arange(self.n, self.n + n_fit)
        self._write(slots, X[fits], y[fits], w[fits], g[fits], keys[fits])
        self.n += n_fit
        # The other cells: a uniform sample of size ``size`` of every row seen.
        for i in np.flatnonzero(seen + counts > self.size):
            new = np.flatnonzero(inverse == i)
            old = np.flatnonzero(
                self.key[: self.n] * self.n_classes + self.y[: self.n] == unique[i]
            )
            n_old_seen = int(seen[i])
            # How many of the new rows a uniform sample of all rows seen keeps.
            k_new = int(
                self.rng.hypergeometric(len(new), n_old_seen, self.size)
                if n_old_seen
                else self.size
            )
            take = new[self.rng.choice(len(new), k_new, replace=False)]
            free = self.size - len(old)  # slots never filled
            drop = max(0, k_new - free)
            if drop:
                slots_old = old[self.rng.choice(len(old), drop, replace=False)]
            else:
                slots_old = np.empty(0, dtype=np.int64)
            n_append = k_new - drop
            self._grow(n_append)
            slots = np.concatenate([slots_old, np.arange(self.n, self.n + n_append)])
            self.n += n_append
            self._write(slots, X[take], y[take], w[take], g[take], keys[take])

    def rows(self, key):
        """Positions of the rows kept under ``key``."""
        return np.flatnonzero(self.key[: self.n] == key)

    def by_key(self, wanted=None):
        """``(order, keys, starts, ends)``: the rows of the ``wanted`` keys (all
        when None) grouped by key, and each key's span in ``order``.

        A few keys are found by scanning the keys (linear in the rows kept);
        many by one sort.
        """
        key = self.key[: self.n]
        if wanted is not None and len(wanted) <= 16:
            rows = [np.flatnonzero(key == k) for k in wanted]
            keep = [i for i, r in enumerate(rows) if len(r)]
            lengths = np.array([len(rows[i]) for i in keep], dtype=np.int64)
            order = (
                np.concatenate([rows[i] for i in keep])
                if keep
                else np.empty(0, dtype=np.int64)
            )
            starts = np.cumsum(lengths) - lengths
            keys = np.asarray(wanted, dtype=np.int64)[keep]
            return order, keys, starts, starts + lengths
        order = np.argsort(key, kind="stable")
        keys, starts = np.unique(key[order], return_index=True)
        ends = np.r_[starts[1:], len(order)]
        if wanted is not None:
            chosen = np.isin(keys, wanted)
            keys, starts, ends = keys[chosen], starts[chosen], ends[chosen]
        return order, keys, starts, ends

    def tensors(self, rows, device):
        """``(X, y, weight)`` of ``rows`` as tensors on ``device``."""
        return (
            torch.as_tensor(self.X[rows], device=device),
            torch.as_tensor(self.y[rows], device=device),
            torch.as_tensor(self.weight[rows], device=device),
        )

    def as_dict(self, rows=None):
        rows = slice(0, self.n) if rows is None else rows
        return {
            "X": self.X[rows],
            "task": self.key[rows],
            "group": self.group[rows],
            "weight": self.weight[rows],
        }

    def nbytes(self):
        return sum(
            getattr(self, name)[: self.n].nbytes
            for name in ("X", "y", "weight", "group", "key")
        )

    def __getstate__(self):
        """Pickle (and copy) the rows kept, not the room reserved for more."""
        state = self.__dict__.copy()
        for name in ("X", "y", "weight", "group", "key"):
            state[name] = state[name][: self.n].copy()
        return state


class SupportSet:
    """The rows each task adapts to, and the class weights of every row seen.

    Parameters
    ----------
    n_features, n_classes : int
    size : int
        Most rows kept per class of each task and of the pooled set.
    random_state : int
        Seeds the choice of the rows kept.
    """

    def __init__(self, n_features, n_classes, size, random_state):
        rng = np.random.default_rng(random_state)
        self.n_classes = n_classes
        self.tasks = RowStore(n_features, n_classes, size, rng)
        self.pooled = RowStore(n_features, n_classes, size, rng)
        # Summed weight per class of every row seen: row 0 the pooled rows,
        # row t + 1 task t.
        self.counts = np.zeros((1, n_classes))

    def add(self, data, *, pooled=None):
        """Add validated rows (a ``MetaInput`` with ``y``).

        Rows with a task join that task's rows; rows in ``pooled`` (default:
        the rows without a task) join the pooled set too.
        """
        task, y = data.task, data.y
        pooled = task < 0 if pooled is None else pooled
        n_tasks = max(len(self.counts) - 1, int(task.max(initial=-1)) + 1)
        if n_tasks + 1 > len(self.counts):
            extra = np.zeros((n_tasks + 1 - len(self.counts), self.n_classes))
            self.counts = np.concatenate([self.counts, extra])
        w = np.asarray(data.weight, dtype=np.float64)
        known = task >= 0
        np.add.at(self.counts, (task[known] + 1, y[known]), w[known])
        self.counts[0] += np.bincount(y[pooled], w[pooled], self.n_classes)
        # Rows of weight 0 take no part in adaptation, as if they were dropped.
        keep = known & (data.weight > 0)
        self.tasks.add(
            data.X[keep], y[keep], data.weight[keep], data.group[keep], task[keep]
        )
        keep = pooled & (data.weight > 0)
        self.pooled.add(
            data.X[keep],
            y[keep],
            data.weight[keep],
            data.group[keep],
            np.zeros(int(keep.sum()), dtype=np.int64),
        )

    def class_counts(self, n_tasks):
        """Summed weight per class: row 0 the pooled rows, row t + 1 task t."""
        counts = self.counts
        if n_tasks + 1 > len(counts):
            counts = np.concatenate(
                [counts, np.zeros((n_tasks + 1 - len(counts), self.n_classes))]
            )
        return counts

    def nbytes(self):
        """Bytes held: the rows kept and the class weights."""
        return self.tasks.nbytes() + self.pooled.nbytes() + self.counts.nbytes
