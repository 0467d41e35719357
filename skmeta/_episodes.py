"""Episode sampling: tasks become padded support/query batches.

Rule for small tasks (documented in the user guide): for every task and
class, ``n_shots + n_queries`` rows are drawn without replacement when the
class has that many rows. A class with fewer rows ``n`` is split: the support
set gets ``min(n_shots, max(1, n // 2))`` rows and the query set the rest (at
most ``n_queries``), so a class with one row is support only. A class a task
lacks is simply absent from its episodes. Tasks where no class has two rows
cannot give a query loss, and tasks with rows of a single class give episodes
whose queries all share the support's class, which would reward adapting to
"always predict that class": both are left out of meta-training with a
warning that names them, but they still get an adapted state after fitting.
"""

import math

import numpy as np
import scipy.sparse as sp
import torch


class EpisodeSampler:
    """Draw meta-batches of episodes from rows labelled with tasks.

    Parameters
    ----------
    tasks : ndarray of shape (n_samples,), dtype=int64
        Task index of each row (``0 .. n_tasks - 1``).

    y : ndarray of shape (n_samples,), dtype=int64
        Encoded class of each row (``0 .. n_classes - 1``).

    n_classes : int
        Number of classes.

    n_shots, n_queries : int
        Support and query rows per class in an episode.

    meta_batch_size : int
        Tasks per meta-batch.

    rng : numpy.random.Generator
        Source of randomness.

    pooled_episodes : float, default=0.0
        Share of the episodes drawn from all rows, whatever their task; their
        task id is ``-1``.

    task_sampling : {"uniform", "proportional"}, default="uniform"
        How an episode's task is drawn: uniformly among the eligible tasks
        (without replacement within a meta-batch where there are enough), or
        with probability proportional to its rows (with replacement).

    min_classes : int, default=2
        A task takes part only with rows of at least this many classes (and a
        class of two rows).

    variable_shots : bool, default=False
        Whether each episode keeps a number of support rows per class drawn
        uniformly from ``1 .. n_shots`` (the first ones drawn; the support
        slots past it are padding).
    """

    def __init__(
        self,
        tasks,
        y,
        n_classes,
        *,
        n_shots,
        n_queries,
        meta_batch_size,
        rng,
        pooled_episodes=0.0,
        min_classes=2,
        variable_shots=False,
        task_sampling="uniform",
    ):
        self.pooled_episodes = pooled_episodes
        self.task_sampling = task_sampling
        self.variable_shots = variable_shots
        self.pooled_rows = {c: np.flatnonzero(y == c) for c in range(n_classes)}
        self.n_classes = n_classes
        self.n_shots = n_shots
        self.n_queries = n_queries
        self.meta_batch_size = meta_batch_size
        self.rng = rng
        order = np.lexsort((y, tasks))
        keys = tasks[order] * n_classes + y[order]
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        ends = np.r_[starts[1:], len(keys)]
        self.task_ids = np.unique(tasks)
        # Cell (task, class) -> its rows, as a slice of one flat array: row
        # ``n_task_rows`` of the tables is the pooled "task" (-1).
        n_task_rows = int(tasks.max()) + 1 if len(tasks) else 0
        pooled_order = np.argsort(y, kind="stable")
        pooled_counts = np.bincount(y, minlength=n_classes)
        self._flat = np.concatenate([order, pooled_order])
        self._start = np.zeros((n_task_rows + 1, n_classes), dtype=np.int64)
        self._count = np.zeros((n_task_rows + 1, n_classes), dtype=np.int64)
        cell_t, cell_c = np.divmod(keys[starts], n_classes)
        self._start[cell_t, cell_c] = starts
        self._count[cell_t, cell_c] = ends - starts
        self._start[-1] = len(order) + np.r_[0, np.cumsum(pooled_counts)[:-1]]
        self._count[-1] = pooled_counts
        self._n_support, self._n_query = self._split_table(self._count)
        counts = self._count[self.task_ids]
        usable = (counts >= 2).any(axis=1) & (
            (counts > 0).sum(axis=1) >= min(min_classes, n_classes)
        )
        self.eligible = self.task_ids[usable].astype(np.int64)
        self.excluded = np.setdiff1d(self.task_ids, self.eligible)
        # The probability of drawing each eligible task (None: uniform).
        self.task_probabilities = None
        if task_sampling == "proportional" and self.eligible.size:
            rows = self._count[self.eligible].sum(axis=1).astype(np.float64)
            self.task_probabilities = rows / rows.sum()

    def _split_table(self, n):
        """Support and query sizes for classes of ``n`` rows (an array)."""
        S, Q = self.n_shots, self.n_queries
        full = n >= S + Q
        n_support = np.where(full, S, np.minimum(S, np.maximum(1, n // 2)))
        n_support = np.where(n > 0, n_support, 0)
        n_query = np.where(full, Q, np.minimum(Q, n - n_support))
        return n_support, n_query

    def split_sizes(self, n):
        """Support and query sizes for a class with ``n`` rows in a task."""
        n_support, n_query = self._split_table(np.asarray(n))
        return int(n_support), int(n_query)

    def _draw(self, n, m):
        """Random distinct offsets, in random order, into cells of ``n`` rows.

        Returns an array of shape ``(len(n), m)``: row ``i`` holds the first
        ``min(n[i], m)`` entries of a uniformly random permutation of
        ``0 .. n[i] - 1`` (and arbitrary values after them). Small cells sort
        random keys; large cells draw with replacement and keep the first
        ``m`` distinct values, which is sampling without replacement, so the
        cost is ``O(m)`` per cell whatever its size.
        """
        out = np.zeros((len(n), m), dtype=np.int64)
        width = _SMALL_CELL * m
        small = n <= width
        if small.any():
            n_small = n[small]
            keys = self.rng.random((len(n_small), max(int(n_small.max()), m)))
            keys[np.arange(keys.shape[1]) >= n_small[:, None]] = 2.0
            out[small] = np.argsort(keys, axis=1)[:, :m]
        large = np.flatnonzero(~small)
        if large.size:
            draws = (self.rng.random((large.size, 2 * m)) * n[large, None]).astype(
                np.int64
            )
            # First occurrence of each value in its row, in draw order.
            by_value = np.argsort(draws, axis=1, kind="stable")
            sorted_draws = np.take_along_axis(draws, by_value, axis=1)
            repeat = np.zeros_like(draws, dtype=bool)
            np.put_along_axis(
                repeat,
                by_value[:, 1:],
                sorted_draws[:, 1:] == sorted_draws[:, :-1],
                axis=1,
            )
            kept = ~repeat
            enough = kept.sum(axis=1) >= m
            rank = np.cumsum(kept, axis=1)
            take = kept & (rank <= m)
            ok = large[enough]
            out[ok] = draws[enough][take[enough]].reshape(-1, m)
            for i in large[~enough]:  # a rare event: many repeats in 2m draws
                out[i] = self.rng.choice(n[i], m, replace=False)
        return out

    def sample(self):
        """Draw one meta-batch.

        Returns
        -------
        support, query : ndarray of shape (n_tasks, n_classes * n_shots) and \
                (n_tasks, n_classes * n_queries), dtype=int64
            Row indices; padded slots hold ``-1``.
        task_ids : ndarray of shape (n_tasks,)
            The tasks drawn; ``-1`` for an episode drawn from all rows.
        """
        support, query, task_ids = self.sample_many(1)
        return support[0], query[0], task_ids[0]

    def sample_many(self, n_batches):
        """Draw ``n_batches`` meta-batches at once (arrays stacked on a first
        axis); the rows of all their cells are drawn in one vectorised call.

        Each meta-batch follows the distribution of :meth:`sample`; drawing
        one meta-batch this way consumes the random stream as :meth:`sample`
        does.
        """
        n_tasks = self.meta_batch_size
        probabilities = self.task_probabilities
        replace = probabilities is not None or len(self.eligible) < n_tasks
        task_ids = np.empty((n_batches, n_tasks), dtype=np.int64)
        for b in range(n_batches):
            task_ids[b] = self.rng.choice(
                self.eligible, size=n_tasks, replace=replace, p=probabilities
            )
            if self.pooled_episodes > 0:
                pooled = self.rng.random(n_tasks) < self.pooled_episodes
                task_ids[b] = np.where(pooled, -1, task_ids[b])
        K, S, Q = self.n_classes, self.n_shots, self.n_queries
        # One cell per (episode, class); the pooled row is the tables' last.
        cells = np.where(task_ids < 0, len(self._count) - 1, task_ids)
        n = self._count[cells].ravel()
        n_s, n_q = self._n_support[cells].ravel(), self._n_query[cells].ravel()
        offsets = self._draw(n, S + Q)
        # Offsets past a cell's rows (padding, or an empty cell) are masked
        # below; clipping keeps them inside the array.
        at = self._start[cells].ravel()[:, None] + offsets
        rows = self._flat[np.minimum(at, len(self._flat) - 1)]
        # Support: the first n_s drawn; query: the next n_q.
        n_kept = n_s
        if self.variable_shots:
            # One support size per episode, for all its classes.
            shots = self.rng.integers(1, S + 1, size=n_batches * n_tasks)
            n_kept = np.minimum(n_s, np.repeat(shots, K))
        support = np.where(np.arange(S) < n_kept[:, None], rows[:, :S], -1)
        query_at = np.minimum(n_s[:, None] + np.arange(Q), S + Q - 1)
        query = np.take_along_axis(rows, query_at, axis=1)
        query = np.where(np.arange(Q) < n_q[:, None], query, -1)
        return (
            support.reshape(n_batches, n_tasks, K * S),
            query.reshape(n_batches, n_tasks, K * Q),
            task_ids,
        )


# A cell (task and class) of at most this many times the rows drawn from it
# is shuffled whole; a larger one is drawn from with replacement, repeats
# dropped (few when the cell is this much larger than the draw).
_SMALL_CELL = 4

# Meta-batches an EpisodeLoader draws at once.
_SAMPLE_BLOCK = 32


class EpisodeLoader:
    """Iterable over the meta-batches of one epoch, as tensors on a device.

    Each item is ``(batch, None)`` where ``batch`` maps ``"support_X"``,
    ``"support_y"``, ``"support_w"``, ``"support_g"`` and the same four for
    ``"query_"`` to tensors whose first dimension is the task. Padded slots
    have weight 0. ``"*_g"`` holds the sensitive group of each row (``-1``
    when there are none).

    Parameters
    ----------
    data : dict of ndarray
        ``"X"``, ``"weight"`` and ``"group"`` arrays over the training rows.

    y : ndarray of shape (n_samples,)
        Encoded classes.

    sampler : EpisodeSampler
        Draws the row indices.

    n_steps : int
        Meta-batches per epoch.

    device : str or torch.device
        Where the tensors are put.

    log_prior : torch.Tensor of shape (n_sampler_tasks, n_classes), default=None
        Log class frequencies of each task the sampler draws, given to the
        batch as ``"log_prior"`` (pooled episodes get ``pooled_log_prior``).

    pooled_log_prior : torch.Tensor of shape (n_classes,), default=None
        Log class frequencies of the pooled data, given to the batch as
        ``"pooled_log_prior"`` (repeated for each task).
    """

    def __init__(
        self,
        data,
        y,
        sampler,
        *,
        n_steps,
        device,
        log_prior=None,
        pooled_log_prior=None,
    ):
        self.sampler = sampler
        self.n_steps = n_steps
        # Put the whole training set on the device once; episodes are gathers.
        pad = lambda a: np.concatenate([a, np.zeros_like(a[:1])])  # noqa: E731
        X = data["X"]
        if sp.issparse(X):
            # Sparse rows stay sparse on the host; each meta-batch densifies
            # the rows it draws.
            self.X = sp.vstack([X, sp.csr_matrix((1, X.shape[1]), dtype=X.dtype)])
            self.X = self.X.tocsr()
        else:
            self.X = torch.as_tensor(pad(X), device=device)
        self.y = torch.as_tensor(pad(y), device=device)
        w = pad(data["weight"])
        w[-1] = 0.0  # the padding row (index -1) weighs nothing
        self.w = torch.as_tensor(w, device=device)
        self.g = torch.as_tensor(pad(data["group"]), device=device)
        self.device = device
        self.log_prior = None if log_prior is None else log_prior.to(device)
        self.pooled_log_prior = (
            None if pooled_log_prior is None else pooled_log_prior.to(device)
        )

    def __len__(self):
        return self.n_steps

    def _rows(self, idx):
        # Padded slots (-1) take the last row, the padding row.
        at = idx.ravel() % self.y.shape[0]
        flat = torch.as_tensor(at, device=self.device)
        if isinstance(self.X, torch.Tensor):
            return self.X.index_select(0, flat).view(*idx.shape, -1), flat
        rows = torch.as_tensor(self.X[at].toarray(), device=self.device)
        return rows.view(*idx.shape, -1), flat

    def _gather(self, idx, prefix):
        X, flat = self._rows(idx)
        return {
            prefix + "X": X,
            prefix + "y": self.y.index_select(0, flat).view(idx.shape),
            prefix + "w": self.w.index_select(0, flat).view(idx.shape),
            prefix + "g": self.g.index_select(0, flat).view(idx.shape),
        }

    def __iter__(self):
        table = self.log_prior
        if table is not None and self.pooled_log_prior is not None:
            # Row -1, the last one, serves the pooled episodes.
            table = torch.cat([table, self.pooled_log_prior[None]])
        for start in range(0, self.n_steps, _SAMPLE_BLOCK):
            # Meta-batches are drawn a block at a time: one vectorised draw
            # instead of one per step (Python and NumPy call overhead).
            block = self.sampler.sample_many(min(_SAMPLE_BLOCK, self.n_steps - start))
            for support, query, task_ids in zip(*block, strict=True):
                yield self._batch(support, query, task_ids, table), None

    def _batch(self, support, query, task_ids, table):
        task_ids = torch.as_tensor(task_ids, device=self.device)
        batch = {
            **self._gather(support, "support_"),
            **self._gather(query, "query_"),
            "task": task_ids,
        }
        if table is not None:
            batch["log_prior"] = table.index_select(0, task_ids % len(table))
        if self.pooled_log_prior is not None:
            batch["pooled_log_prior"] = self.pooled_log_prior.expand(len(task_ids), -1)
        return batch


# Meta-batches per epoch, at most, that the number of tasks alone asks for.
MAX_STEPS_FOR_TASKS = 100


def default_steps_per_epoch(
    n_samples, n_classes, n_shots, n_queries, meta_batch_size, n_tasks=1
):
    """Meta-batches per epoch when ``steps_per_epoch=None``.

    Enough to draw about ``n_samples`` rows, and at least two per task (up to
    :data:`MAX_STEPS_FOR_TASKS`), so that a data set of many small tasks still
    shows each task in about ``2 * meta_batch_size`` episodes per epoch; never
    fewer than 10.
    """
    rows_per_step = meta_batch_size * n_classes * (n_shots + n_queries)
    by_rows = math.ceil(n_samples / rows_per_step)
    by_tasks = min(2 * n_tasks, MAX_STEPS_FOR_TASKS)
    return max(10, by_rows, by_tasks)


class BatchLoader:
    """Batches of consecutive rows as tensors: skorch's validation iterator.

    skorch's ``DataLoader`` over a ``Dataset`` indexes one row at a time and
    cannot collate sparse rows; this slices whole batches (densifying sparse
    rows a batch at a time).

    Parameters
    ----------
    data : dict of ndarray or sparse matrix
        ``"X"`` and the per-row arrays.
    y : ndarray of shape (n_samples,)
    batch_size : int
    device : str or torch.device
    """

    def __init__(self, data, y, *, batch_size, device):
        self.data, self.y = data, np.asarray(y)
        self.batch_size = batch_size if batch_size > 0 else max(len(self.y), 1)
        self.device = device

    def __len__(self):
        return math.ceil(len(self.y) / self.batch_size)

    def __iter__(self):
        for start in range(0, len(self.y), self.batch_size):
            rows = slice(start, start + self.batch_size)
            batch = {}
            for key, value in self.data.items():
                value = value[rows]
                value = value.toarray() if sp.issparse(value) else value
                batch[key] = torch.as_tensor(value, device=self.device)
            yield batch, torch.as_tensor(self.y[rows], device=self.device)
