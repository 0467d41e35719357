"""Synthetic grouped classification data: related tasks, one per group."""

import numbers

import numpy as np
from sklearn.utils import Bunch, check_random_state

__all__ = ["make_group_classification"]

# Exponent of the Zipf law behind group_sizes="skewed".
_ZIPF_EXPONENT = 1.5
# Structures of the groups' shifts from the shared task.
_SHIFTS = ("isotropic", "types", "low_rank")


def _check_int(value, name, low):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}.")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}.")
    return int(value)


def _check_real(value, name, low, high=np.inf):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}.")
    if not low <= value <= high:  # also rejects nan
        bounds = f">= {low}" if high == np.inf else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be {bounds}, got {value}.")
    return float(value)


def _check_ids(values, name, n_groups):
    """Validate an array-like of group ids, each in [0, n_groups)."""
    ids = np.asarray(values)
    if ids.ndim != 1 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
        raise ValueError(f"{name} must be a 1-D array-like of integer group ids.")
    if ids.size and (ids.min() < 0 or ids.max() >= n_groups):
        raise ValueError(
            f"{name} must hold group ids in [0, n_groups={n_groups}), got {ids}."
        )
    return np.unique(ids).astype(np.int64)


def make_group_classification(
    n_groups=10,
    n_samples_per_group=100,
    n_features=6,
    *,
    group_sizes="equal",
    group_shift=1.0,
    shift="isotropic",
    n_types=3,
    within_type_shift=None,
    shift_rank=1,
    label_bias=0.0,
    biased_groups=None,
    n_informative=None,
    flip_y=0.0,
    return_tasks=False,
    random_state=None,
):
    """Generate a binary classification problem made of related groups.

    Each group is a task: its rows follow their own linear decision rule, which is a
    random perturbation of a rule shared by all groups, and its inputs have their
    own mean. ``group_shift`` sets how far the groups stray from the shared rule,
    ``shift`` how their shifts are structured (independent, clustered into a few
    types, or confined to a low-dimensional subspace), ``group_sizes`` how the rows
    are spread over the groups, and ``label_bias`` plants a bias against some groups
    by relabelling some of their positives as negatives. Useful for meta-learning
    across groups, few-shot adaptation to a new group, and fairness audits, in the
    style of :func:`sklearn.datasets.make_classification`.

    The model, with ``d = n_features``, ``k = n_informative`` and
    ``s = group_shift``:

    1. Shared weights: ``w0[:k] ~ N(0, I_k)``, ``w0[k:] = 0``.
    2. For each group ``g``, draw ``e_g ~ N(0, I_k)`` and ``v_g ~ N(0, I_d)``. The
       group's weights are ``w_g[:k] = w0[:k] + delta_g``, ``w_g[k:] = 0``, its
       input mean is ``mu_g`` and its intercept ``b_g = -mu_g . w_g``, which
       centres the group's scores at 0, so each group has about as many positives
       as negatives. ``shift`` sets ``delta_g`` and ``mu_g``:

       - ``"isotropic"``: ``delta_g = s * e_g`` and ``mu_g = (s / 2) * v_g``. Each
         group strays independently, in every direction: a single Gaussian prior
         around ``w0`` describes the groups exactly.
       - ``"types"``: group ``g`` has type ``t_g = g % n_types``, and each type
         ``t`` draws ``a_t ~ N(0, I_k)`` and ``m_t ~ N(0, I_d)`` (after the
         ``e_g`` and ``v_g``). With ``s_w = within_type_shift``,
         ``delta_g = s * a_{t_g} + s_w * e_g`` and
         ``mu_g = (s / 2) * m_{t_g} + (s_w / 2) * v_g``: the groups form
         ``n_types`` clusters, the weights of two groups of one type differ by
         ``s_w * sqrt(2)`` per coordinate (standard deviation), those of two
         groups of different types by ``sqrt(2 * (s**2 + s_w**2))``.
       - ``"low_rank"``: ``U`` is a ``k x r`` matrix with orthonormal columns,
         ``r = shift_rank``, shared by all groups: the Q factor of the QR
         decomposition of a ``k x r`` matrix of ``N(0, 1)`` draws (made after
         the ``e_g`` and ``v_g``), with column signs that make R's diagonal
         positive, so that its span is uniformly random.
         ``delta_g = s * sqrt(k / r) * U z_g`` with ``z_g = e_g[:r] ~ N(0, I_r)``
         and ``mu_g = (s / 2) * v_g``. Every shift lies in the span of ``U``, and
         ``E ||delta_g||^2 = s**2 * k`` as in the isotropic case (each shift is
         ``sqrt(k / r)`` times longer along the ``r`` directions it may take).
         With ``r = k`` this is the isotropic model in distribution.

    3. Group sizes ``n_g``: ``n_samples_per_group`` each (``"equal"``), the given
       sizes (array-like), or for ``"skewed"``
       ``n_g = 2 + m_g`` with ``m ~ Multinomial(n_groups * (n_samples_per_group -
       2), p)`` and ``p_g`` proportional to ``(g + 1) ** -1.5`` (a Zipf law): group
       0 is the largest, most groups are small, the total is
       ``n_groups * n_samples_per_group`` and every group has at least 2 rows.
    4. Rows of group ``g``: ``x = mu_g + N(0, I_d)`` and
       ``y = 1[x . w_g + b_g + e > 0]`` with noise ``e ~ N(0, 1)``.
    5. Label noise: each row is picked with probability ``flip_y`` and its label
       replaced by a fair coin flip (as in ``make_classification``).
    6. Planted bias: in each group of ``biased_groups``, ``round(label_bias *
       n_pos)`` of its ``n_pos`` positive rows, chosen at random, get label 0.
    7. The rows are shuffled.

    All draws come from one generator seeded by ``random_state``, model parameters
    (steps 1-2) first, so the same ``random_state`` gives the same group rules
    whatever ``group_sizes``, ``label_bias`` or ``flip_y`` are. Whatever ``shift``
    is, ``w0``, the ``e_g`` and the ``v_g`` are drawn first, in the same order, so
    the same ``random_state`` also gives the same ``w0`` under every ``shift`` and
    the same input means under ``"isotropic"`` and ``"low_rank"``.

    Parameters
    ----------
    n_groups : int, default=10
        Number of groups (tasks), at least 1.

    n_samples_per_group : int, default=100
        Rows per group for ``group_sizes="equal"``, the average number of rows per
        group for ``"skewed"`` (then at least 2). Ignored when ``group_sizes`` is an
        array-like.

    n_features : int, default=6
        Number of features, at least 1.

    group_sizes : {"equal", "skewed"} or array-like of int, default="equal"
        How many rows each group gets: all the same, Zipf-distributed (see above),
        or the given sizes (``n_groups`` integers, each at least 1).

    group_shift : float, default=1.0
        Standard deviation of each group's weight shift from the shared weights
        (twice that of its input mean shift), per coordinate; at least 0. With 0
        every group has the same rule and the same input distribution. Under
        ``shift="types"``, the standard deviation of each type's shift; under
        ``"low_rank"``, the shift has the same expected squared norm as under
        ``"isotropic"``.

    shift : {"isotropic", "types", "low_rank"}, default="isotropic"
        How the groups' shifts are structured (step 2 above). ``"isotropic"``:
        independent shifts in every direction. ``"types"``: each group is a small
        perturbation of one of ``n_types`` latent types, which differ from each
        other in their weights and input means. ``"low_rank"``: the weight shifts
        all lie in one random subspace of dimension ``shift_rank``. One pooled
        isotropic Gaussian prior around the shared weights describes the first but
        neither of the others.

    n_types : int, default=3
        Number of latent types, at least 1; group ``g`` has type
        ``g % n_types``. Only used with ``shift="types"``.

    within_type_shift : float, default=None
        Standard deviation of a group's weight shift from its type's weights
        (twice that of its input mean shift from its type's mean), at least 0.
        None means ``group_shift / 10``. Only used with ``shift="types"``.

    shift_rank : int, default=1
        Dimension of the subspace the weight shifts lie in, between 1 and
        ``n_informative``. Only used with ``shift="low_rank"``.

    label_bias : float, default=0.0
        Fraction of the positives of each biased group relabelled 0, in [0, 1].

    biased_groups : array-like of int, default=None
        Ids of the groups ``label_bias`` applies to. None means the smaller half:
        the ``n_groups // 2`` groups with the fewest rows, ties going to the higher
        id (with equal sizes, the upper half of the ids).

    n_informative : int, default=None
        Number of features the labels depend on (the first ones), between 1 and
        ``n_features``; the others carry no signal within a group, only the group
        means. None means ``n_features``.

    flip_y : float, default=0.0
        Probability that a row's label is replaced by a random one, in [0, 1].

    return_tasks : bool, default=False
        If True, also return the parameters of each group's task.

    random_state : int, RandomState instance or None, default=None
        Seed or generator for all the random draws. Pass an int for reproducible
        output.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), dtype float64
        The features.

    y : ndarray of shape (n_samples,), dtype int64
        The 0/1 labels.

    groups : ndarray of shape (n_samples,), dtype int64
        The group id of each row, in ``0 .. n_groups - 1``.

    tasks : :class:`~sklearn.utils.Bunch`
        Only if ``return_tasks`` is True. ``shared_weights`` (``w0``, shape
        ``(n_features,)``), ``weights`` (``w_g``, shape ``(n_groups, n_features)``),
        ``intercepts`` (``b_g``, shape ``(n_groups,)``), ``means`` (``mu_g``, shape
        ``(n_groups, n_features)``), ``sizes`` (rows per group) and
        ``biased_groups`` (sorted ids). With ``shift="types"`` also ``types``
        (``t_g``, shape ``(n_groups,)``), ``type_weights`` (``w0 + s * a_t``, shape
        ``(n_types, n_features)``) and ``type_means`` (``(s / 2) * m_t``, shape
        ``(n_types, n_features)``); with ``shift="low_rank"`` also
        ``shift_basis`` (``U`` padded with zero rows to shape
        ``(n_features, shift_rank)``, so that ``weights - shared_weights`` lies in
        the span of its columns).

    See Also
    --------
    sklearn.datasets.make_classification : Classification data without groups.

    Examples
    --------
    >>> import numpy as np
    >>> from skmeta.datasets import make_group_classification
    >>> X, y, groups = make_group_classification(n_groups=5, random_state=0)
    >>> X.shape, y.shape, groups.shape
    ((500, 6), (500,), (500,))
    >>> np.bincount(groups).tolist()
    [100, 100, 100, 100, 100]
    >>> X, y, groups = make_group_classification(
    ...     n_groups=8, group_sizes="skewed", label_bias=0.5, random_state=0
    ... )
    >>> int(np.bincount(groups).sum()), int(np.bincount(groups).min()) >= 2
    (800, True)

    Groups drawn from two latent types, and groups whose shifts share one
    direction:

    >>> *_, tasks = make_group_classification(
    ...     n_groups=6, shift="types", n_types=2, return_tasks=True, random_state=0
    ... )
    >>> tasks.types.tolist()
    [0, 1, 0, 1, 0, 1]
    >>> *_, tasks = make_group_classification(
    ...     shift="low_rank", shift_rank=1, return_tasks=True, random_state=0
    ... )
    >>> shifts = tasks.weights - tasks.shared_weights
    >>> tasks.shift_basis.shape, int(np.linalg.matrix_rank(shifts))
    ((6, 1), 1)
    """
    n_groups = _check_int(n_groups, "n_groups", 1)
    n_samples_per_group = _check_int(n_samples_per_group, "n_samples_per_group", 1)
    n_features = _check_int(n_features, "n_features", 1)
    if n_informative is None:
        n_informative = n_features
    n_informative = _check_int(n_informative, "n_informative", 1)
    if n_informative > n_features:
        raise ValueError(
            f"n_informative must be <= n_features={n_features}, got {n_informative}."
        )
    group_shift = _check_real(group_shift, "group_shift", 0.0)
    if not (isinstance(shift, str) and shift in _SHIFTS):
        raise ValueError(
            f"shift must be one of {', '.join(map(repr, _SHIFTS))}, got {shift!r}."
        )
    n_types = _check_int(n_types, "n_types", 1)
    if within_type_shift is None:
        within_type_shift = group_shift / 10
    within_type_shift = _check_real(within_type_shift, "within_type_shift", 0.0)
    shift_rank = _check_int(shift_rank, "shift_rank", 1)
    if shift_rank > n_informative:
        raise ValueError(
            f"shift_rank must be <= n_informative={n_informative}, got {shift_rank}."
        )
    label_bias = _check_real(label_bias, "label_bias", 0.0, 1.0)
    flip_y = _check_real(flip_y, "flip_y", 0.0, 1.0)
    if isinstance(group_sizes, str):
        if group_sizes not in ("equal", "skewed"):
            raise ValueError(
                'group_sizes must be "equal", "skewed" or an array-like of sizes, '
                f"got {group_sizes!r}."
            )
        if group_sizes == "skewed" and n_samples_per_group < 2:
            raise ValueError(
                'n_samples_per_group must be >= 2 with group_sizes="skewed", '
                f"got {n_samples_per_group}."
            )
    else:
        sizes = np.asarray(group_sizes)
        if (
            sizes.shape != (n_groups,)
            or not np.issubdtype(sizes.dtype, np.integer)
            or sizes.min() < 1
        ):
            raise ValueError(
                f'group_sizes must be "equal", "skewed" or {n_groups} (n_groups) '
                f"integers >= 1, got {group_sizes!r}."
            )
    if biased_groups is not None:
        biased_groups = _check_ids(biased_groups, "biased_groups", n_groups)
    rng = check_random_state(random_state)

    # Steps 1-2: the tasks. The draws of the isotropic model come first whatever
    # shift is; the other shifts draw what they need after them.
    k = n_informative
    shared = np.zeros(n_features)
    shared[:k] = rng.standard_normal(k)
    weights = np.zeros((n_groups, n_features))
    weight_noise = rng.standard_normal((n_groups, k))
    mean_noise = rng.standard_normal((n_groups, n_features))
    shift_tasks = {}
    if shift == "isotropic":
        weights[:, :k] = shared[:k] + group_shift * weight_noise
        means = group_shift / 2 * mean_noise
    elif shift == "types":
        types = np.arange(n_groups, dtype=np.int64) % n_types
        type_weights = np.zeros((n_types, n_features))
        type_weights[:, :k] = shared[:k] + group_shift * rng.standard_normal(
            (n_types, k)
        )
        type_means = group_shift / 2 * rng.standard_normal((n_types, n_features))
        weights[:, :k] = type_weights[types, :k] + within_type_shift * weight_noise
        means = type_means[types] + within_type_shift / 2 * mean_noise
        shift_tasks = {
            "types": types,
            "type_weights": type_weights,
            "type_means": type_means,
        }
    else:  # low_rank
        q, r = np.linalg.qr(rng.standard_normal((k, shift_rank)))
        basis = np.zeros((n_features, shift_rank))
        basis[:k] = q * np.where(np.diag(r) < 0, -1.0, 1.0)  # a unique, uniform U
        z = weight_noise[:, :shift_rank]
        scale = group_shift * np.sqrt(k / shift_rank)
        weights[:, :k] = shared[:k] + scale * z @ basis[:k].T
        means = group_shift / 2 * mean_noise
        shift_tasks = {"shift_basis": basis}
    intercepts = -np.einsum("gf,gf->g", means, weights)

    # Step 3: the group sizes.
    if isinstance(group_sizes, str) and group_sizes == "equal":
        sizes = np.full(n_groups, n_samples_per_group)
    elif isinstance(group_sizes, str):
        p = np.arange(1, n_groups + 1) ** -_ZIPF_EXPONENT
        extra = n_groups * (n_samples_per_group - 2)
        sizes = 2 + rng.multinomial(extra, p / p.sum())
    sizes = sizes.astype(np.int64)
    if biased_groups is None:
        ids = np.arange(n_groups)
        biased_groups = np.sort(np.lexsort((-ids, sizes))[: n_groups // 2])

    # Step 4: the rows.
    groups = np.repeat(np.arange(n_groups, dtype=np.int64), sizes)
    X = means[groups] + rng.standard_normal((groups.size, n_features))
    scores = np.einsum("nf,nf->n", X, weights[groups]) + intercepts[groups]
    y = (scores + rng.standard_normal(groups.size) > 0).astype(np.int64)

    # Step 5: label noise.
    flip = rng.uniform(size=y.size) < flip_y
    y[flip] = rng.randint(2, size=flip.sum())

    # Step 6: planted bias.
    for g in biased_groups:
        positives = np.flatnonzero((groups == g) & (y == 1))
        n_flip = round(label_bias * positives.size)
        y[rng.choice(positives, n_flip, replace=False)] = 0

    # Step 7: shuffle.
    order = rng.permutation(y.size)
    X, y, groups = X[order], y[order], groups[order]
    if not return_tasks:
        return X, y, groups
    tasks = Bunch(
        shared_weights=shared,
        weights=weights,
        intercepts=intercepts,
        means=means,
        sizes=sizes,
        biased_groups=biased_groups,
        **shift_tasks,
    )
    return X, y, groups, tasks
