"""Warnings raised by skmeta."""

from ._input import ConstantPredictorWarning, UnknownGroupWarning

__all__ = ["ConstantPredictorWarning", "UnknownGroupWarning"]
