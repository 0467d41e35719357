"""The support store: the rows each task adapts to.

After meta-training, every task's state (MAML: adapted parameters,
ProtoNet: prototypes) is computed from the rows stored here, and
``partial_fit`` adds rows. Rows given with a task adapt that task only; the
rows of ``fit`` and the rows given without a task form the *pooled* support
set, which serves unknown tasks.
"""

import numpy as np
import torch

from ._objectives import class_counts

__all__ = ["SupportSet"]


class SupportSet:
    """Rows stored for adaptation, with their task, class and weight.

    Parameters
    ----------
    data : MetaInput
        Validated rows with their encoded classes.

    pooled : ndarray of shape (n_rows,), dtype=bool, default=None
        Rows that belong to the pooled support set (all when None).
    """

    def __init__(self, data, pooled=None):
        self.X = np.asarray(data.X, dtype=np.float32)
        self.y = np.asarray(data.y, dtype=np.int64)
        self.weight = np.asarray(data.weight, dtype=np.float32)
        self.task = np.asarray(data.task, dtype=np.int64)
        self.group = np.asarray(data.group, dtype=np.int64)
        self.pooled = (
            np.ones(len(self.y), dtype=bool) if pooled is None else np.asarray(pooled)
        )

    def __len__(self):
        return len(self.y)

    def add(self, data):
        """Append rows; those without a task join the pooled support set."""
        self.X = np.concatenate([self.X, data.X])
        self.y = np.concatenate([self.y, data.y])
        self.weight = np.concatenate([self.weight, data.weight])
        self.task = np.concatenate([self.task, data.task])
        self.group = np.concatenate([self.group, data.group])
        self.pooled = np.concatenate([self.pooled, data.task < 0])

    def tensors(self, mask, device):
        """``(X, y, weight)`` of the rows in ``mask``, as tensors on ``device``."""
        return (
            torch.as_tensor(self.X[mask], device=device),
            torch.as_tensor(self.y[mask], device=device),
            torch.as_tensor(self.weight[mask], device=device),
        )

    def task_rows(self, task):
        """Mask of the rows of task ``task`` (``-1``: the pooled rows)."""
        return self.pooled if task < 0 else self.task == task

    def class_counts(self, n_tasks, n_classes):
        """Summed weight per class: row 0 the pooled rows, row t + 1 task t."""
        return class_counts(
            self.task, self.y, self.weight, n_tasks, n_classes, self.pooled
        )

    def as_dict(self):
        """The stored rows in the layout of :meth:`MetaInput.as_dict`."""
        return {
            "X": self.X,
            "task": self.task,
            "group": self.group,
            "weight": self.weight,
        }
