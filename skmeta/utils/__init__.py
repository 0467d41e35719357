"""Helpers for validating group information."""

from ._validation import check_groups, encode_groups

__all__ = ["check_groups", "encode_groups"]
