"""Typed operator attributes <-> MXNet's attribute strings.

MXNet keeps every op attribute as a string in the graph ("(3, 3)", "True", "0.001", "None"); an OpDef field's type
says how to parse it. Formatting follows MXNet's Python front-end, which stores `str(value)` (dtypes by name).
"""
import dataclasses
import re
import typing

import numpy as np

from ..base import MXNetError, normalize_dtype
from ..name import format_value

__all__ = ["REQUIRED", "param", "Shape", "OptShape", "FloatTuple", "Dtype", "parse_value", "format_value", "format_dtype",
           "format_param", "parse_shape", "type_name", "float_param",
           "moving_average_factors"]

REQUIRED = dataclasses.MISSING


class Shape(tuple):
    """A tuple of ints written "(3, 3)" (a bare "3" is a 1-tuple)."""


class OptShape(tuple):
    """A tuple whose items may be None: "(None, 2)" (MXNet's Tuple<optional<int>>, e.g. slice begin/end)."""


class FloatTuple(tuple):
    """A tuple of floats written "(-2.5, 2.5)" (MXNet's Tuple<double>, e.g. _histogram's range)."""


class Dtype(str):
    """A dtype name ('float32'); numpy dtypes are accepted and stored by name."""


def float_param(value, dtype):
    """A C++ `float` operator parameter (most of MXNet's: lr, wd, eps, slopes, grad_scale, ...; its Python docstrings
    say "float", where a `double` says "double") as MXNet's kernels use it: the float32 value cast to the arrays'
    dtype, so float64 data sees float64(float32(0.1))."""
    return np.dtype(dtype).type(np.float32(value))


def moving_average_factors(momentum, dtype):
    """(keep, take) of MXNet's moving statistics, ``state * keep + batch * take``: BatchNorm's momentum is a float
    parameter and ``1 - momentum`` is computed in the state's dtype (batch_norm.cc: AccReal(1) - param_.momentum)."""
    keep = float_param(momentum, dtype)
    return keep, np.dtype(dtype).type(1) - keep


def param(default=REQUIRED, *, choices=None, min=None, max=None, doc=""):
    """An OpDef attribute: its MXNet default (REQUIRED when none), allowed values (dmlc's set_lower_bound: `min`,
    set_range: `min` and `max`, inclusive; for a Shape, of every entry) and documentation."""
    meta = {"choices": tuple(choices) if choices else None, "min": min, "max": max, "doc": doc}
    if default is REQUIRED:
        return dataclasses.field(metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _parse_bool(text):
    lowered = text.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise ValueError("expected a boolean (True/False), got %r" % text)


_INT = re.compile(r"\s*[+-]?\d+\s*$")


def _parse_int(text):
    # dmlc reads an int with `istream >> int` and refuses any other character after it: "4.0" and "True" are
    # errors (MXNet 1.9.1: num_hidden=4.0 or np.float32(4) raises "expect int but value='4.0'").
    if not _INT.match(text):
        raise ValueError("expected an integer, got %r" % text)
    return int(text)


def _parse_float(text):
    return float(text.strip())


def _split_tuple(text):
    text = text.strip()
    if text[:1] in "([" and text[-1:] in ")]":
        text = text[1:-1]
    return [item.strip() for item in text.split(",") if item.strip()]


def parse_shape(text, allow_none=False):
    """'(3, 3)' -> (3, 3); '3' -> (3,); '()' -> (); 'None' items allowed with allow_none."""
    items = []
    for item in _split_tuple(text):
        if item == "None" and allow_none:
            items.append(None)
        else:
            items.append(_parse_int(item.rstrip("L")))
    return tuple(items)


def _strip_optional(kind):
    if typing.get_origin(kind) is typing.Union:
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        return args[0], True
    return kind, False


def parse_value(kind, value):
    """Parse one attribute (a string, or a Python value given to mx.sym.<Op>) as `kind`."""
    kind, optional = _strip_optional(kind)
    if value is None or (isinstance(value, str) and value.strip() == "None"):
        if optional:
            return None
        raise ValueError("None is not allowed")
    if kind is Dtype:
        return Dtype(normalize_dtype(value).name)
    if kind is FloatTuple:
        items = _split_tuple(value) if isinstance(value, str) else \
            ([value] if isinstance(value, (int, float, np.number)) else value)
        return tuple(_parse_float(v) if isinstance(v, str) else float(v) for v in items)
    if not isinstance(value, str):
        if kind in (Shape, OptShape):
            if isinstance(value, (int, np.integer)):
                return (int(value),)
            return tuple(None if v is None else int(v) for v in value)
        if kind not in (bool, int, float):
            return kind(value)
        value = format_value(value)
    if kind is bool:
        return _parse_bool(value)
    if kind is int:
        return _parse_int(value)
    if kind is float:
        return _parse_float(value)
    if kind is Shape:
        return parse_shape(value)
    if kind is OptShape:
        return parse_shape(value, allow_none=True)
    return value


def format_dtype(value):
    """MXNet's `dtype=` keyword: stored as `np.dtype(value).name` (so dtype=None gives 'float64', as in MXNet)."""
    dtype = np.dtype(value)
    return dtype.names[0] if dtype.names else dtype.name


def format_param(kind, key, value):
    """The attribute string for keyword `key` of an op call (`kind`: the OpDef field's type, None when the op has
    no such field: then even `dtype=` is a plain str(), as in MXNet's generated functions)."""
    if key == "dtype" and kind is not None:
        return format_dtype(value)
    if isinstance(value, (np.dtype, type)) and _strip_optional(kind)[0] is Dtype:
        return Dtype(normalize_dtype(value).name)     # onnxsym also takes numpy types for other dtype fields
    return format_value(value)


def type_name(kind):
    """The type MXNet names in a parameter error ("int", "Shape(tuple)", "Shape or None")."""
    kind, optional = _strip_optional(kind)
    if optional:
        return "%s or None" % ("Shape" if kind in (Shape, OptShape) else type_name(kind))
    return {int: "int", float: "float", bool: "boolean", Shape: "Shape(tuple)", OptShape: "Shape(tuple)",
            FloatTuple: "tuple of <double>",
            Dtype: "dtype"}.get(kind, "string")


def check_choice(op_name, field, value):
    """MXNet's enum, lower-bound and range checks, with dmlc's messages."""
    meta = field.metadata
    if meta.get("choices") and value is not None and value not in meta["choices"]:
        raise MXNetError("Invalid Input: %r, valid values are: {%s} (parameter %s of %s)"
                         % (value, ", ".join(map(repr, sorted(meta["choices"], key=str))), field.name, op_name))
    low, high = meta.get("min"), meta.get("max")
    items = [v for v in (value if isinstance(value, tuple) else (value,)) if v is not None]   # each Shape entry
    if high is not None and any(item > high or (low is not None and item < low) for item in items):
        raise MXNetError("value %s for Parameter %s exceed bound [%s,%s] (operator %s)"
                         % (format_value(value), field.name, low, high, op_name))
    if low is not None and any(item < low for item in items):
        raise MXNetError("value %s for Parameter %s should be greater equal to %s (operator %s)"
                         % (format_value(value), field.name, low, op_name))
