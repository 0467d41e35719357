"""Warnings and errors raised by skmeta."""

from ._input import UnknownGroupWarning

__all__ = ["UnknownGroupWarning"]
