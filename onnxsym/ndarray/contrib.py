"""`mx.nd.contrib`: the `_contrib_*` operators (added by onnxsym._namespaces) and MXNet's Python helpers of that
namespace: isinf, isfinite, isnan (float 0/1 arrays of data's dtype, as MXNet's ndarray/contrib.py computes them)."""
import numpy as np

__all__ = ["isinf", "isfinite", "isnan"]


def isinf(data):
    """1 where data is +-inf, else 0 (data's dtype)."""
    return data.abs() == np.inf


def isfinite(data):
    """1 where data is neither inf nor NaN, else 0 (data's dtype)."""
    from . import logical_and  # lazy: this module is imported by the package that defines it
    return logical_and(data == data, data.abs() != np.inf)


def isnan(data):
    """1 where data is NaN, else 0 (data's dtype)."""
    return data != data
