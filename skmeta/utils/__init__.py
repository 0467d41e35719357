"""Helpers: validation of group information, and torch's threads."""

from ._threads import torch_threads
from ._validation import check_groups, encode_groups

__all__ = ["check_groups", "encode_groups", "torch_threads"]
