"""Helpers: group validation, adapting pipelines, and torch's threads."""

from ._pipeline import adapt
from ._threads import torch_threads
from ._validation import check_groups, encode_groups

__all__ = ["adapt", "check_groups", "encode_groups", "torch_threads"]
