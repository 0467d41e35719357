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

    min_classes : int, default=2
        A task takes part only with rows of at least this many classes (and a
        class of two rows).
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
    ):
        self.pooled_episodes = pooled_episodes
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
        self.rows = {}  # (task, class) -> row indices
        for start, end in zip(starts, ends, strict=True):
            t, c = divmod(int(keys[start]), n_classes)
            self.rows[t, c] = order[start:end]
        self.task_ids = np.unique(tasks)
        two_rows = {t for (t, _), idx in self.rows.items() if len(idx) >= 2}
        classes = {}
        for t, _ in self.rows:
            classes[t] = classes.get(t, 0) + 1
        eligible = {t for t in two_rows if classes[t] >= min(min_classes, n_classes)}
        self.eligible = np.array(sorted(eligible), dtype=np.int64)
        self.excluded = np.setdiff1d(self.task_ids, self.eligible)

    def split_sizes(self, n):
        """Support and query sizes for a class with ``n`` rows in a task."""
        if n >= self.n_shots + self.n_queries:
            return self.n_shots, self.n_queries
        n_support = min(self.n_shots, max(1, n // 2))
        return n_support, min(self.n_queries, n - n_support)

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
        n_tasks = self.meta_batch_size
        replace = len(self.eligible) < n_tasks
        task_ids = self.rng.choice(self.eligible, size=n_tasks, replace=replace)
        if self.pooled_episodes > 0:
            pooled = self.rng.random(n_tasks) < self.pooled_episodes
            task_ids = np.where(pooled, -1, task_ids)
        K, S, Q = self.n_classes, self.n_shots, self.n_queries
        support = np.full((n_tasks, K * S), -1, dtype=np.int64)
        query = np.full((n_tasks, K * Q), -1, dtype=np.int64)
        for i, t in enumerate(task_ids):
            for c in range(K):
                idx = self.pooled_rows[c] if t < 0 else self.rows.get((int(t), c))
                if idx is None or len(idx) == 0:
                    continue
                n_s, n_q = self.split_sizes(len(idx))
                # O(n_s + n_q) draw without replacement, whatever len(idx).
                drawn = idx[self.rng.choice(len(idx), n_s + n_q, replace=False)]
                support[i, c * S : c * S + n_s] = drawn[:n_s]
                query[i, c * Q : c * Q + n_q] = drawn[n_s:]
        return support, query, task_ids


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
        if isinstance(self.X, torch.Tensor):
            return self.X[torch.as_tensor(idx, device=self.device)]
        rows = self.X[np.asarray(idx).ravel()].toarray()
        return torch.as_tensor(rows, device=self.device).view(*idx.shape, -1)

    def _gather(self, idx, prefix):
        X = self._rows(idx)
        idx = torch.as_tensor(idx, device=self.device)
        return {
            prefix + "X": X,
            prefix + "y": self.y[idx],
            prefix + "w": self.w[idx],
            prefix + "g": self.g[idx],
        }

    def __iter__(self):
        for _ in range(self.n_steps):
            support, query, task_ids = self.sampler.sample()
            task_ids = torch.as_tensor(task_ids, device=self.device)
            batch = {
                **self._gather(support, "support_"),
                **self._gather(query, "query_"),
                "task": task_ids,
            }
            if self.log_prior is not None:
                table = self.log_prior
                if self.pooled_log_prior is not None:
                    # Row -1, the last one, serves the pooled episodes.
                    table = torch.cat([table, self.pooled_log_prior[None]])
                batch["log_prior"] = table[task_ids]
            if self.pooled_log_prior is not None:
                batch["pooled_log_prior"] = self.pooled_log_prior.expand(
                    len(task_ids), -1
                )
            yield batch, None


def default_steps_per_epoch(n_samples, n_classes, n_shots, n_queries, meta_batch_size):
    """Meta-batches needed to draw about ``n_samples`` rows, at least 10."""
    rows_per_step = meta_batch_size * n_classes * (n_shots + n_queries)
    return max(10, math.ceil(n_samples / rows_per_step))


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
