"""The estimators' side of the training tasks' mixture (``task_mixture``).

:mod:`skmeta._mixture` has the tensor algebra; this mixin of the
estimators' base class supplies the models: it chooses the fitted share at
the end of ``fit`` by leaving training tasks out, scores rows under the
training tasks' states, sets each new group's mixture weights and share, mixes
them into the logits of new groups' rows at prediction, and exposes the
fitted attributes (``task_mixture_weights_``, ``task_mixture_columns_``,
``task_mixture_tasks_``). It relies on the estimator's states
(``states_``, ``tasks_``, ``support_``), on the methods each estimator
defines (``_adapt_states``, ``_fold_logits``, ``_state_logits``) and on the
base class's helpers (``_padded``, ``_fork_rng``, ``_seed``,
``_inference_dtype``).
"""

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from . import _mixture
from ._heads import CVFolds, scatter_folds
from ._support import _WEIGHT, chunk_rows

__all__ = ["TaskMixtureMixin", "repeated_states"]

# Row evaluations per batch when new groups' mixture weights are computed.
_MIXTURE_BUDGET = 2**20


def repeated_states(components, n_rows):
    """The state of each (row, component) pair of ``_repeated_state_logits``,
    rows first: ``components`` (C,) for every row, or (n_rows, C) each row's
    own."""
    if components.dim() == 1:
        return components.repeat(n_rows)
    return components.reshape(-1)


class TaskMixtureMixin:
    """The training tasks' mixture that new groups borrow (``task_mixture``)."""

    def _fit_task_mixture(self):
        """Set the share of the training tasks' mixture in new groups'
        predictions (``task_mixture``) and its components, at the end of
        ``fit`` (see :mod:`skmeta._mixture`)."""
        for key in _mixture.KEYS:
            self.states_.pop(key, None)
        self._n_training_tasks_ = len(self.tasks_)
        self._mixture_components_ = np.empty(0, dtype=np.int64)
        self._mixture_covariates_ = None
        self.task_mixture_ = 0.0
        if self.task_source_ == "pooled":
            return  # no training tasks: nothing to mix
        order, keys, starts, ends = self.support_.tasks.by_key()
        if len(keys) < 2:
            return
        # The largest training tasks (the most rows kept), in task order.
        largest = np.argsort(-(ends - starts), kind="stable")
        components = np.sort(keys[largest[: _mixture._MAX_COMPONENTS]])
        self._mixture_components_ = components + 1  # rows of states_
        store = self.support_.tasks
        span = dict(zip(keys.tolist(), zip(starts, ends, strict=True), strict=True))
        self._mixture_covariates_ = _mixture.covariate_moments(
            store.X[: store.n],
            store.weight[: store.n],
            [order[slice(*span[key])] for key in components.tolist()],
        )
        if self.task_mixture != "auto":
            share = float(self.task_mixture)
        elif self.constraints is not None and self.fairness_weight > 0:
            share = 0.0  # the mixture is not trained for fairness
        else:
            share = self._left_out_share(order, keys, starts, ends)
        self.task_mixture_ = share
        if share > 0:
            n_states = len(self.states_[_WEIGHT])
            top = min(_mixture._TOP, len(components))
            device = self.states_[_WEIGHT].device
            self.states_[_mixture.SHARE] = torch.zeros(n_states, device=device)
            self.states_[_mixture.INDEX] = torch.zeros(
                (n_states, top), dtype=torch.int64, device=device
            )
            self.states_[_mixture.WEIGHT] = torch.zeros((n_states, top), device=device)
            new = np.arange(self._n_training_tasks_, len(self.tasks_))
            if len(new):
                with self._fork_rng(), torch.no_grad():
                    self._set_mixtures(new, self._prior_state(), {})

    def _prior_state(self):
        """The pooled state, which task states start from (no mixture)."""
        return {
            name: v[0].clone()
            for name, v in self.states_.items()
            if name != _WEIGHT and name not in _mixture.KEYS
        }

    def _covariate_log_likelihood(self, X):
        """:func:`skmeta._mixture.covariate_log_likelihood` of the rows ``X``
        (..., d) under the mixture's components."""
        if self._mixture_covariates_ is None:
            return None
        mean, var = self._mixture_covariates_
        return _mixture.covariate_log_likelihood(X, mean, var)

    def _mixture_evidence(
        self, X, y, w, row_ll, prior, excluded=None, own=None, row_lx=None
    ):
        """Each padded task's cross-validated evidence for the mixture against
        its own model (:func:`skmeta._mixture.cv_evidence`), on the rows and
        folds its logistic head would use; 0 for tasks with fewer than two
        rows of some class. The own model of a fold is adapted to the fold's
        other rows, without a head (``_fold_logits``), unless ``own`` (one
        entry per task of ``X``, ``_mixture.OWN`` from the task's head, or
        None) already holds its log-likelihoods: the rows a task's head
        cross-validates come first in the head order whatever the padding,
        so its entries are cut or padded to this batch's width."""
        evidence = torch.zeros(len(X), dtype=torch.float64, device=X.device)
        folds = CVFolds(y, w, len(self.classes_))
        tasks, rows = folds.tasks, folds.rows
        if not len(tasks):
            return evidence
        m = rows.shape[1]
        fit, held_out, _ = folds.masks(tasks)
        known = [] if own is None else [own[t] for t in tasks.tolist()]
        if known and all(o is not None for o in known):
            own = torch.stack(
                [
                    torch.nn.functional.pad(o[:, :m], (0, max(0, m - o.shape[1])))
                    for o in known
                ]
            ).to(device=X.device, dtype=torch.float64)
        else:
            own = self._own_fold_log_likelihood(X, folds, prior)
        index = rows[tasks, :, None].expand(-1, -1, row_ll.shape[-1])
        row_ll = row_ll[tasks].gather(1, index)
        if row_lx is not None:
            row_lx = row_lx[tasks].gather(1, index)
        evidence[tasks] = _mixture.cv_evidence(
            row_ll,
            folds.w[tasks],
            fit,
            held_out,
            own,
            None if excluded is None else excluded[tasks],
            row_lx,
        )
        return evidence

    def _own_fold_log_likelihood(self, X, folds, prior):
        """:func:`skmeta._mixture.own_log_likelihood` of the cross-validated
        rows of the tasks of ``folds`` (:class:`~skmeta._heads.CVFolds` of
        the padded tasks ``X``), each fold's own model adapted to the fold's
        fitting rows: shape (len(folds.tasks), n_folds, n_rows)."""
        parts = []
        for chunk in folds.chunks(self._max_tasks_per_batch()):
            xf, yf, wf = folds.inputs(X, chunk)
            live = folds.live(chunk)  # the empty folds' logits are not read
            logits = self._fold_logits(xf[live], yf[live], wf[live], prior)
            logits = scatter_folds(live, logits)
            logits = logits.view(len(chunk), -1, *logits.shape[1:])
            parts.append(_mixture.own_log_likelihood(logits, folds.y[chunk]))
        return torch.cat(parts)

    def _component_log_proba(self, X, components=None):
        """Log-probabilities (before the class prior) of the rows ``X`` (n, d)
        under every component of the mixture, or under the states
        ``components`` (rows of ``states_``, shape (n, C): each row's own):
        shape (n, n_components or C, n_classes), in the inference dtype."""
        dtype = self._inference_dtype()
        X = X.to(device=self.device, dtype=dtype)
        if components is None:
            components = torch.as_tensor(self._mixture_components_, device=X.device)
        n_components, n_classes = components.shape[-1], len(self.classes_)
        out = X.new_empty((len(X), n_components, n_classes))
        per_chunk = max(1, chunk_rows(X.shape[-1]) // n_components)
        for start in range(0, len(X), per_chunk):
            x = X[start : start + per_chunk]
            chunk = components
            if components.dim() == 2:
                chunk = components[start : start + per_chunk]
            logits = self._repeated_state_logits(x, chunk, dtype)
            out[start : start + len(x)] = logits.view(
                len(x), n_components, n_classes
            ).log_softmax(-1)
        return out

    def _repeated_state_logits(self, X, components, dtype):
        """Logits of every row of ``X`` under every state of ``components``
        (rows of ``states_``: shape (C,), the same for every row, or (len(X),
        C), each row's own), row by row: shape (len(X) * C, n_classes)."""
        return self._state_logits(
            X.repeat_interleave(components.shape[-1], 0),
            repeated_states(components, len(X)),
            self.states_,
            dtype,
        )

    def _set_mixtures(self, tasks, prior, own_by_task):
        """Each new task's mixture: its ``_TOP`` most likely components given
        its rows kept, their weights, and its share: ``task_mixture_`` as
        prior odds updated by its cross-validated evidence (its own model's
        fold log-likelihoods from ``own_by_task``, by task key, where its
        head computed them)."""
        tasks = np.asarray(tasks, dtype=np.int64)
        tasks = tasks[tasks >= self._n_training_tasks_]
        if not len(tasks) or self.task_mixture_ == 0:
            return
        store = self.support_.tasks
        order, keys, starts, ends = store.by_key(tasks)
        n_components = len(self._mixture_components_)
        components = torch.as_tensor(self._mixture_components_, device=self.device)
        sizes = np.maximum(ends - starts, 1)
        i = 0
        while i < len(keys):
            # As many tasks as keep padded rows times components in budget.
            j = i + 1
            while (
                j < len(keys)
                and (j + 1 - i) * sizes[i : j + 1].max() * n_components
                <= _MIXTURE_BUDGET
            ):
                j += 1
            X, y, w = self._padded(store, order, starts[i:j], ends[i:j])
            n_tasks, n_rows, _ = X.shape
            log_proba = self._component_log_proba(X.reshape(n_tasks * n_rows, -1))
            row_ll = _mixture.row_log_likelihood(
                log_proba.view(n_tasks, n_rows, n_components, -1), y
            )
            row_lx = self._covariate_log_likelihood(X)
            weighing = row_ll if row_lx is None else row_ll + row_lx
            log_likelihood = (weighing * w[..., None].to(row_ll.dtype)).sum(1)
            index, weight = _mixture.top_posterior(log_likelihood)
            rows = torch.as_tensor(keys[i:j] + 1, device=components.device)
            own = [own_by_task.get(key) for key in keys[i:j]]
            evidence = self._mixture_evidence(
                X, y, w, row_ll, prior, own=own, row_lx=row_lx
            )
            share = _mixture.group_share(self.task_mixture_, evidence)
            share = torch.where(w.sum(1) > 0, share, 0.0)
            self.states_[_mixture.INDEX][rows] = components[index]
            self.states_[_mixture.WEIGHT][rows] = weight.to(torch.float32)
            self.states_[_mixture.SHARE][rows] = share.to(torch.float32)
            i = j

    def _left_out_share(self, order, keys, starts, ends):
        """``task_mixture="auto"``: the share of the grid that serves the
        training tasks best, each left out in turn as a new group (see
        :mod:`skmeta._mixture`); 0 with fewer than ``_MIN_TASKS`` of them
        large enough."""
        store = self.support_.tasks
        n_classes = len(self.classes_)
        sizes = _mixture._LOO_SHOTS
        shots, need = max(sizes), max(sizes) + 5
        rng = np.random.default_rng(self._seed())
        eligible = []
        for key, start, end in zip(keys, starts, ends, strict=True):
            rows = order[start:end]
            rows = rows[store.weight[rows] > 0]
            if np.bincount(store.y[rows], minlength=n_classes).min() >= need:
                eligible.append((key, rows))
        if len(eligible) < _mixture._MIN_TASKS:
            return 0.0
        if len(eligible) > _mixture._LOO_TASKS:
            keep = rng.choice(len(eligible), _mixture._LOO_TASKS, replace=False)
            eligible = [eligible[i] for i in np.sort(keep)]
        left_out, supports, queries = [], [], []
        for key, rows in eligible:
            by_class = [rows[store.y[rows] == c] for c in range(n_classes)]
            for _ in range(_mixture._LOO_DRAWS):
                support = np.stack(
                    [rng.choice(r, shots, replace=False) for r in by_class]
                )  # (n_classes, shots)
                query = np.setdiff1d(rows, support)
                n_query = min(len(query), _mixture._LOO_QUERY)
                left_out.append(key + 1)
                supports.append(support)
                queries.append(rng.choice(query, n_query, replace=False))
        n_draws, n_query = len(supports), max(len(q) for q in queries)
        query = np.zeros((n_draws, n_query), dtype=np.int64)
        y_query = np.full((n_draws, n_query), -1, dtype=np.int64)
        for d, q in enumerate(queries):
            query[d, : len(q)], y_query[d, : len(q)] = q, store.y[q]
        device, dtype = self.device, self._inference_dtype()
        Xq = torch.as_tensor(store.X[query], device=device)
        y_query = torch.as_tensor(y_query, device=device)
        excluded = torch.as_tensor(
            np.asarray(left_out)[:, None] == self._mixture_components_[None, :],
            device=device,
        )
        self._set_training(False)
        prior = self._prior_state()
        n_components = len(self._mixture_components_)
        with self._fork_rng(), torch.no_grad():
            self._manual_seed(self._seed())
            # Each draw's support of each size: the first rows of each class
            # of the largest, whose other rows are not among the queries
            # either, so the sizes share the queries and their
            # log-probabilities under every component. A share must serve
            # new groups of one row per class as well as of several.
            supports = np.stack(supports)  # (n_draws, n_classes, shots)
            batches = []
            for size in sizes:
                support = supports[:, :, :size].reshape(n_draws, -1)
                Xs = torch.as_tensor(store.X[support], device=device)
                ys = torch.as_tensor(store.y[support], device=device)
                ws = torch.ones(ys.shape, device=device)
                own, own_folds = self._left_out_own(Xs, ys, ws, Xq, prior, dtype)
                support_lp = self._component_log_proba(Xs.reshape(-1, Xs.shape[-1]))
                row_ll = _mixture.row_log_likelihood(
                    support_lp.view(n_draws, -1, n_components, n_classes), ys
                )
                row_lx = self._covariate_log_likelihood(Xs)
                batches.append((Xs, ys, ws, own, own_folds, row_ll, row_lx))
            # A draw's mixtures weigh only their _TOP most likely components:
            # its queries are scored under those of any support size, with
            # the columns or without (their union), not under every one.
            # Each support's log-likelihood under every component, without
            # the columns (False) and with them (True).
            support_lls = {
                (columns, i): (
                    row_ll if row_lx is None or not columns else row_ll + row_lx
                ).sum(1)
                for columns in (False, True)
                for i, (*_, row_ll, row_lx) in enumerate(batches)
            }
            top = [
                _mixture.top_posterior(ll.masked_fill(excluded, -torch.inf))[0]
                for ll in support_lls.values()
            ]
            scored, position = _mixture.union_of_components(
                torch.cat(top, 1), n_components
            )
            components = torch.as_tensor(self._mixture_components_, device=device)
            query_lp = self._component_log_proba(
                Xq.reshape(-1, Xq.shape[-1]),
                components[scored].repeat_interleave(n_query, 0),
            ).view(n_draws, n_query, scored.shape[1], n_classes)
            # The share chosen with the mixture weighed by the rows' classes
            # alone, then with their columns too; the columns are kept only
            # where they clearly serve the left-out tasks better.
            choices = []
            for columns in (False, True):
                owns, mixtures, evidences = [], [], []
                for i, (Xs, ys, ws, own, own_folds, row_ll, row_lx) in enumerate(
                    batches
                ):
                    lx = row_lx if columns else None
                    evidences.append(
                        self._mixture_evidence(
                            Xs,
                            ys,
                            ws,
                            row_ll,
                            prior,
                            excluded,
                            own=own_folds,
                            row_lx=lx,
                        )
                    )
                    mixtures.append(
                        _mixture.mixture_proba(
                            query_lp, support_lls[columns, i], excluded, position
                        )
                    )
                    owns.append(own)
                choices.append(
                    _mixture.score_shares(
                        torch.cat(owns),
                        torch.cat(mixtures),
                        y_query.repeat(len(sizes), 1),
                        torch.cat(evidences),
                        per_draw=True,
                    )
                )
        columns = _mixture.use_columns(choices[0][2], choices[1][2])
        if not columns:
            self._mixture_covariates_ = None
        share, self._mixture_scores_, _ = choices[int(columns)]
        return share

    def _left_out_own(self, Xs, ys, ws, Xq, prior, dtype):
        """The left-out draws' own models (:meth:`_left_out_share`): each
        adapted to its support ``Xs``, ``ys`` (weights ``ws``) as a new
        group's would be; its probabilities of the query rows ``Xq`` and the
        log-likelihoods of its head's folds (``_mixture.OWN``, None where it
        has none)."""
        n_draws, n_query = Xq.shape[:2]
        own, own_folds = [], []
        step = self._max_tasks_per_batch()
        for start in range(0, n_draws, step):
            chunk = slice(start, start + step)
            states, _ = self._adapt_states(Xs[chunk], ys[chunk], ws[chunk], prior)
            folds = states.pop(_mixture.OWN, None)
            own_folds.extend([None] * len(Xs[chunk]) if folds is None else folds)
            n = len(Xs[chunk])
            index = torch.arange(n, device=Xs.device).repeat_interleave(n_query)
            logits = self._state_logits(
                Xq[chunk].reshape(n * n_query, -1).to(dtype), index, states, dtype
            )
            own.append(logits.view(n, n_query, -1).softmax(-1))
        return torch.cat(own), own_folds

    def _mixed_logits(self, X, index, logits, dtype):
        """The logits of the rows of new groups with a mixture: the log of
        ``share * mixture + (1 - share) * own``, each in class probabilities
        before the class prior."""
        share = self.states_[_mixture.SHARE].index_select(0, index)
        rows = (share > 0).nonzero().flatten()
        if not len(rows):
            return logits
        top = self.states_[_mixture.INDEX].shape[1]
        per_chunk = max(1, chunk_rows(X.shape[-1]) // top)
        for start in range(0, len(rows), per_chunk):
            r = rows[start : start + per_chunk]
            states = index.index_select(0, r)
            component = self.states_[_mixture.INDEX].index_select(0, states)
            component_logits = self._repeated_state_logits(
                X.index_select(0, r), component, dtype
            )
            logits[r] = _mixture.mix_log_proba(
                logits.index_select(0, r).log_softmax(-1),
                component_logits.view(len(r), top, -1).log_softmax(-1),
                self.states_[_mixture.WEIGHT].index_select(0, states),
                share.index_select(0, r),
            )
        return logits

    @property
    def task_mixture_weights_(self):
        """Weight of each training task's model (columns, the tasks of
        ``task_mixture_tasks_``) in the prediction of each task of
        ``tasks_`` (rows): its share of the mixture times its posterior
        weight; rows of the training tasks, and of every task when
        ``task_mixture_`` is 0, are 0. Each row sums to the task's share."""
        check_is_fitted(self)
        n_components = len(self._mixture_components_)
        out = np.zeros((len(self.tasks_), n_components))
        if _mixture.SHARE not in self.states_:
            return out
        n = len(self.tasks_) + 1
        share = self.states_[_mixture.SHARE][1:n].cpu().double().numpy()
        index = self.states_[_mixture.INDEX][1:n].cpu().numpy()
        weight = self.states_[_mixture.WEIGHT][1:n].cpu().double().numpy()
        column = np.searchsorted(self._mixture_components_, index)
        rows = np.repeat(np.arange(n - 1), index.shape[1])
        np.add.at(out, (rows, column.ravel()), (share[:, None] * weight).ravel())
        return out

    @property
    def task_mixture_columns_(self):
        """Whether the mixture's weights use the rows' columns as well as
        their classes (``task_mixture``): chosen by leaving training tasks
        out with ``"auto"``, always with a number; False without a mixture."""
        check_is_fitted(self)
        return bool(self.task_mixture_ > 0 and self._mixture_covariates_ is not None)

    @property
    def task_mixture_tasks_(self):
        """The training tasks whose models make the mixture (the columns of
        ``task_mixture_weights_``)."""
        check_is_fitted(self)
        return self.tasks_[self._mixture_components_ - 1]
