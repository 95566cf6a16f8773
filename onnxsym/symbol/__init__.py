"""`mx.sym` / `mx.symbol`: the Symbol class, Variable, Group, load/save, and one function per registered op
(generated from the operator registry at import)."""
from . import random, sparse  # noqa: F401  (mx.sym.random, mx.sym.sparse)
from ..name import AttrScope, NameManager, Prefix
from .functions import (arange, eye, full, histogram, hypot, linspace, maximum, minimum, ones, pow, power,
                        split_v2, zeros)
from .serialize import load, load_json
from .symbol import Group, Symbol, Variable, create_symbol, var

fromjson = load_json

__all__ = ["Symbol", "Variable", "var", "Group", "load", "load_json", "fromjson", "NameManager", "Prefix",
           "AttrScope", "pow", "power", "maximum", "minimum", "hypot", "zeros", "ones", "full", "arange", "linspace",
           "eye", "histogram", "split_v2"]
