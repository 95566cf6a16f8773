"""Elementwise arithmetic, comparisons, scalar variants, add_n and unary math.

Families are tables; each entry becomes one registered OpDef. MXNet 1.x comparisons return 0/1 in the input
dtype, `elemwise_*` require equal shapes, `broadcast_*` broadcast numpy-style.
"""
import dataclasses
import math

import numpy as np

from .._shapes import fmt, partial_rule, same_shape_rule
from ..base import MXNetError
from ..runtime.library import ort
from .params import param
from .registry import OpDef, register

__all__ = ["broadcast_shapes", "python_mod", "power_partials"]


# ---------------------------------------------------------------- helpers shared by the lowering bodies
def python_mod(g, a, b):
    """MXNet's mod: the sign follows the divisor (Python %), and x % 0 == 0."""
    dtype = g.dtype(a)
    zero = g.scalar(0, dtype)
    if np.dtype(dtype).kind in "iu":    # ORT raises on an integer modulo by zero; the result there is 0 below
        b = g.Where(g.Equal(b, zero), g.scalar(1, dtype), b)
    r = g.Mod(a, b, fmod=1)
    fix = g.And(g.Not(g.Equal(r, zero)), g.Xor(g.Less(r, zero), g.Less(b, zero)))
    r = g.Where(fix, g.Add(r, b), r)
    # Where, not r * 0: r is NaN where b == 0 (3 % 0 via _rmod_scalar), and MXNet gives 0 there
    return g.Where(g.Equal(b, zero), g.Sub(g.Mul(a, zero), g.Mul(b, zero)), r)


def _compare(onnx_type):
    def lower(g, a, b):
        return g.cast(getattr(g, onnx_type)(a, b), g.dtype(a))
    return lower


def _not_equal(g, a, b):
    return g.cast(g.Not(g.Equal(a, b)), g.dtype(a))


def _logical(onnx_type):
    def lower(g, a, b):
        zero = g.scalar(0, g.dtype(a))
        result = getattr(g, onnx_type)(g.Not(g.Equal(a, zero)), g.Not(g.Equal(b, zero)))
        return g.cast(result, g.dtype(a))
    return lower


def _extremum(onnx_type, keeps_lhs):
    """Max / Min; in training Where(lhs >= rhs, lhs, rhs) (<= for Min) with both branches expanded to the output
    shape: MXNet's backward gives a tie wholly to lhs (mshadow_op::ge / le), ORT's Max/Min gradient splits it."""
    def lower(g, a, b):
        if not g.is_train:
            return getattr(g, onnx_type)(a, b)
        shape = tuple(np.broadcast_shapes(g.shape(a), g.shape(b)))
        full = lambda v: v if tuple(g.shape(v)) == shape else g.Expand(v, g.int64s(shape))
        return g.Where(getattr(g, keeps_lhs)(a, b), full(a), full(b))
    return lower


def _divide(g, a, b):
    """a / b; for integers a zero divisor never reaches ONNX Runtime, which raises (1.32) or dies of SIGFPE (1.23).
    The result there is MXNet 1.9.1's for a scalar divided by an array (_rdiv_scalar, which divides in floating
    point): the int32/int64 minimum, 0 for 8- and 16-bit types (the minimum's low bits). MXNet's array / array and
    array / 0 die of SIGFPE themselves; they get the same value here."""
    dtype = np.dtype(g.dtype(a))
    if dtype.kind not in "iu":
        return g.Div(a, b)
    wide = dtype if dtype.itemsize >= 4 else np.dtype(np.int32)     # ORT 1.23 has no 8/16-bit Where or Div
    a, b = (g.cast(v, wide) if wide != dtype else v for v in (a, b))
    zero = g.scalar(0, wide)
    is_zero = g.Equal(b, zero)
    quotient = g.Div(a, g.Where(is_zero, g.scalar(1, wide), b))
    result = g.Where(is_zero, g.scalar(np.iinfo(dtype).min if dtype.itemsize >= 4 else 0, wide), quotient)
    return g.cast(result, dtype) if wide != dtype else result


def _binary_table():
    """(mx name suffix, lowering(g, a, b)) shared by the elemwise_, broadcast_ and _scalar families."""
    return {
        "add": lambda g, a, b: g.Add(a, b),
        "sub": lambda g, a, b: g.Sub(a, b),
        "mul": lambda g, a, b: g.Mul(a, b),
        "div": _divide,
        "mod": python_mod,
        "power": lambda g, a, b: g.Pow(a, b),
        "maximum": _extremum("Max", "GreaterOrEqual"),
        "minimum": _extremum("Min", "LessOrEqual"),
        "hypot": lambda g, a, b: g.Sqrt(g.Add(g.Mul(a, a), g.Mul(b, b))),
        "equal": _compare("Equal"),
        "not_equal": _not_equal,
        "greater": _compare("Greater"),
        "greater_equal": _compare("GreaterOrEqual"),
        "lesser": _compare("Less"),
        "lesser_equal": _compare("LessOrEqual"),
        "logical_and": _logical("And"),
        "logical_or": _logical("Or"),
        "logical_xor": _logical("Xor"),
    }


BINARY = _binary_table()

def power_partials(g, a, b, y):
    """(d a^b / d a, d a^b / d b) for y = a^b: b a^(b-1), 0 where b == 0 (a^0 is constant; MXNet's 0 * 0^-1 is
    NaN); and a^b ln a where a > 0, 0 elsewhere: the limit at a = 0 (a^b is 0 for every b > 0), and for a < 0,
    where a^b is not real for non-integer b, no derivative exists (0, as TensorFlow; MXNet gives NaN)."""
    dtype = g.dtype(a)
    zero, one = g.scalar(0, dtype), g.scalar(1, dtype)
    positive = g.Greater(a, zero)
    d_base = g.Where(g.Equal(b, zero), zero, g.Mul(b, g.Pow(a, g.Sub(b, one))))
    d_exponent = g.Where(positive, g.Mul(y, g.Log(g.Where(positive, a, one))), zero)
    return d_base, d_exponent


# d(out)/d(lhs), d(out)/d(rhs) for the binary ops whose ONNX form ORT cannot differentiate (Mod; Pow's exponent).
PARTIALS = {
    "mod": lambda g, a, b, y: (g.Expand(g.scalar(1, g.dtype(a)), g.Shape(y)), g.Neg(g.Floor(g.Div(a, b)))),
    "power": power_partials,
}
NON_DIFFERENTIABLE = {"equal", "not_equal", "greater", "greater_equal", "lesser", "lesser_equal",
                      "logical_and", "logical_or", "logical_xor"}


def broadcast_shapes(op, a, b):
    """numpy broadcasting of two shapes (MXNet's BinaryBroadcastShape). Partial shapes: a dimension where either
    side is unknown (None) stays unknown, as in MXNet, even when the other side is not 1."""
    ndim = max(len(a), len(b))
    pa, pb = (1,) * (ndim - len(a)) + tuple(a), (1,) * (ndim - len(b)) + tuple(b)
    out = []
    for x, y in zip(pa, pb):
        if x is None or y is None:
            out.append(None)
            continue
        if x != y and x != 1 and y != 1:
            raise MXNetError("%s: operands with shapes %s and %s cannot be broadcast together"
                             % (op.op_name, fmt(a), fmt(b)))
        out.append(y if x == 1 else x)
    return tuple(out)


# ---------------------------------------------------------------- two-tensor ops
class _Binary(OpDef):
    inputs = ("lhs", "rhs")
    _lower = None
    _partials = None
    differentiable = True
    infer_shape = same_shape_rule

    def lower(self, g, lhs, rhs):
        out = type(self)._lower(g, lhs, rhs)
        if self._partials is None:
            return out
        return g.with_gradient(out, lambda: list(zip((lhs, rhs), type(self)._partials(g, lhs, rhs, out))))


class _Broadcast(_Binary):
    @partial_rule
    def infer_shape(self, lhs, rhs, out_shapes=None):
        # forwards only, as MXNet: an operand's shape is not deduced from the output's
        if lhs is None or rhs is None:
            return None
        return [lhs, rhs], [lhs if lhs == rhs else broadcast_shapes(self, lhs, rhs)]


def _make_binary(name, base, key, aliases=(), fluent=()):
    cls = type(name, (base,), {"__module__": __name__, "aliases": tuple(aliases), "fluent": tuple(fluent),
                               "_lower": staticmethod(BINARY[key]), "differentiable": key not in NON_DIFFERENTIABLE,
                               "_partials": staticmethod(PARTIALS[key]) if key in PARTIALS else None,
                               "__doc__": "%s(lhs, rhs) elementwise (MXNet %s)." % (key, name)})
    return register(cls)


# elemwise_* (equal shapes): what `a + b` on symbols creates (`_Plus` -> node `_plus0`, op elemwise_add).
_ELEMWISE = {
    "elemwise_add": ("add", ("_Plus", "_plus", "_add")),
    "elemwise_sub": ("sub", ("_Minus", "_minus", "_sub")),
    "elemwise_mul": ("mul", ("_Mul", "_mul")),
    "elemwise_div": ("div", ("_Div", "_div")),
    "_mod": ("mod", ("_Mod",)),
    "_power": ("power", ("_Power",)),
    "_maximum": ("maximum", ("_Maximum",)),
    "_minimum": ("minimum", ("_Minimum",)),
    "_hypot": ("hypot", ("_Hypot",)),
    "_equal": ("equal", ()),
    "_not_equal": ("not_equal", ()),
    "_greater": ("greater", ()),
    "_greater_equal": ("greater_equal", ()),
    "_lesser": ("lesser", ()),
    "_lesser_equal": ("lesser_equal", ()),
    "_logical_and": ("logical_and", ()),
    "_logical_or": ("logical_or", ()),
    "_logical_xor": ("logical_xor", ()),
}
for _name, (_key, _aliases) in _ELEMWISE.items():
    _make_binary(_name, _Binary, _key, _aliases)

_BROADCAST_ALIASES = {"add": ("broadcast_plus",), "sub": ("broadcast_minus",)}
for _key in BINARY:
    _make_binary("broadcast_" + _key, _Broadcast, _key, _BROADCAST_ALIASES.get(_key, ()))


# ---------------------------------------------------------------- tensor-scalar ops
@dataclasses.dataclass(frozen=True)
class _Scalar(OpDef):
    """op(data, scalar) with the scalar cast to the data's dtype (MXNet `*_scalar`)."""
    scalar: float = param(1.0, doc="Scalar input value.")
    reverse = False
    _lower = None
    differentiable = True
    infer_shape = same_shape_rule

    _partials = None

    def lower(self, g, data):
        s = g.scalar(self.scalar, g.dtype(data))
        a, b = (s, data) if self.reverse else (data, s)
        out = type(self)._lower(g, a, b)
        if self._partials is None:
            return out
        return g.with_gradient(out, lambda: [(data, type(self)._partials(g, a, b, out)[1 if self.reverse else 0])])


_SCALARS = {
    "_plus_scalar": ("add", False, "_PlusScalar"),
    "_minus_scalar": ("sub", False, "_MinusScalar"),
    "_rminus_scalar": ("sub", True, "_RMinusScalar"),
    "_mul_scalar": ("mul", False, "_MulScalar"),
    "_div_scalar": ("div", False, "_DivScalar"),
    "_rdiv_scalar": ("div", True, "_RDivScalar"),
    "_mod_scalar": ("mod", False, "_ModScalar"),
    "_rmod_scalar": ("mod", True, "_RModScalar"),
    "_power_scalar": ("power", False, "_PowerScalar"),
    "_rpower_scalar": ("power", True, "_RPowerScalar"),
    "_maximum_scalar": ("maximum", False, "_MaximumScalar"),
    "_minimum_scalar": ("minimum", False, "_MinimumScalar"),
    "_hypot_scalar": ("hypot", False, "_HypotScalar"),
    "_equal_scalar": ("equal", False, "_EqualScalar"),
    "_not_equal_scalar": ("not_equal", False, "_NotEqualScalar"),
    "_greater_scalar": ("greater", False, "_GreaterScalar"),
    "_greater_equal_scalar": ("greater_equal", False, "_GreaterEqualScalar"),
    "_lesser_scalar": ("lesser", False, "_LesserScalar"),
    "_lesser_equal_scalar": ("lesser_equal", False, "_LesserEqualScalar"),
    "_logical_and_scalar": ("logical_and", False, "_LogicalAndScalar"),
    "_logical_or_scalar": ("logical_or", False, "_LogicalOrScalar"),
    "_logical_xor_scalar": ("logical_xor", False, "_LogicalXorScalar"),
}
for _name, (_key, _reverse, _alias) in _SCALARS.items():
    register(type(_name, (_Scalar,), {
        "__module__": __name__, "aliases": (_alias,), "reverse": _reverse,
        "_lower": staticmethod(BINARY[_key]), "differentiable": _key not in NON_DIFFERENTIABLE,
        "_partials": staticmethod(PARTIALS[_key]) if _key in PARTIALS else None,
        "__doc__": "%s(data, scalar)%s (MXNet %s)." % (_key, " reversed" if _reverse else "", _name)}))


# ---------------------------------------------------------------- n-ary sum
@register
class add_n(OpDef):
    """Sum of all inputs (MXNet add_n / ElementWiseSum). A chain of Add: ORT has no Sum gradient."""
    aliases = ("ElementWiseSum",)
    variadic = True
    num_args: int = param(min=1, doc="Number of inputs to be summed.")
    infer_shape = same_shape_rule

    def lower(self, g, *inputs):
        total = inputs[0]
        for value in inputs[1:]:
            total = g.Add(total, value)
        return total if len(inputs) > 1 else g.Identity(total)


@register
class hard_sigmoid(OpDef):
    """max(0, min(1, alpha*x + beta)) (MXNet hard_sigmoid)."""
    alpha: float = param(0.2, doc="Slope of hard sigmoid.")
    beta: float = param(0.5, doc="Bias of hard sigmoid.")
    infer_shape = same_shape_rule

    def lower(self, g, data):
        dtype = g.dtype(data)
        zero, one = g.scalar(0, dtype), g.scalar(1, dtype)
        alpha = g.scalar(np.float32(self.alpha), dtype)         # (float parameters: float32 values)
        y = g.Add(g.Mul(data, alpha), g.scalar(np.float32(self.beta), dtype))
        out = g.Clip(y, zero, one)
        # MXNet's backward is alpha strictly inside (0, 1); ORT's Clip gradient also passes at the bounds
        return g.with_gradient(out, lambda: [(data, g.Where(g.And(g.Greater(y, zero), g.Less(y, one)), alpha,
                                                            zero))])


# ---------------------------------------------------------------- unary math
def _const_like(g, x, value):
    return g.scalar(value, g.dtype(x))


def _round_half_away(g, x):
    half = _const_like(g, x, 0.5)
    return g.Mul(g.Sign(x), g.Floor(g.Add(g.Abs(x), half)))


UNARY = {
    # name: (lowering, fluent, differentiable)
    "relu": (lambda g, x: g.Relu(x), True, True),
    "sigmoid": (lambda g, x: g.Sigmoid(x), True, True),
    "tanh": (lambda g, x: g.Tanh(x), True, True),
    "softsign": (lambda g, x: g.Div(x, g.Add(g.Abs(x), _const_like(g, x, 1))), False, True),
    "exp": (lambda g, x: g.Exp(x), True, True),
    "expm1": (lambda g, x: g.Sub(g.Exp(x), _const_like(g, x, 1)), True, True),
    "log": (lambda g, x: g.Log(x), True, True),
    "log2": (lambda g, x: g.Div(g.Log(x), _const_like(g, x, math.log(2.0))), True, True),
    "log10": (lambda g, x: g.Div(g.Log(x), _const_like(g, x, math.log(10.0))), True, True),
    "log1p": (lambda g, x: g.Log(g.Add(x, _const_like(g, x, 1))), True, True),
    "sqrt": (lambda g, x: g.Sqrt(x), True, True),
    "rsqrt": (lambda g, x: g.Reciprocal(g.Sqrt(x)), True, True),
    "cbrt": (lambda g, x: g.Mul(g.Sign(x), g.Pow(g.Abs(x), _const_like(g, x, 1.0 / 3))), True, True),
    "rcbrt": (lambda g, x: g.Reciprocal(g.Mul(g.Sign(x), g.Pow(g.Abs(x), _const_like(g, x, 1.0 / 3)))),
              True, True),
    "square": (lambda g, x: g.Mul(x, x), True, True),
    "reciprocal": (lambda g, x: g.Reciprocal(x), True, True),
    "abs": (lambda g, x: g.Abs(x), True, True),
    "negative": (lambda g, x: g.Neg(x), False, True),
    "sign": (lambda g, x: g.Sign(x), True, False),
    "floor": (lambda g, x: g.Floor(x), True, False),
    "ceil": (lambda g, x: g.Ceil(x), True, False),
    "round": (_round_half_away, True, False),
    "rint": (lambda g, x: g.Round(x), True, False),
    "fix": (lambda g, x: g.Mul(g.Sign(x), g.Floor(g.Abs(x))), True, False),
    "trunc": (lambda g, x: g.Mul(g.Sign(x), g.Floor(g.Abs(x))), True, False),
    "sin": (lambda g, x: g.Sin(x), True, True),
    "cos": (lambda g, x: g.Cos(x), True, True),
    "tan": (lambda g, x: g.Tan(x), True, True),
    "arcsin": (lambda g, x: g.Asin(x), True, True),
    "arccos": (lambda g, x: g.Acos(x), True, True),
    "arctan": (lambda g, x: g.Atan(x), True, True),
    "sinh": (lambda g, x: g.Sinh(x), True, True),
    "cosh": (lambda g, x: g.Cosh(x), True, True),
    "arcsinh": (lambda g, x: g.Asinh(x), True, True),
    "arccosh": (lambda g, x: g.Acosh(x), True, True),
    "arctanh": (lambda g, x: g.Atanh(x), True, True),
    "degrees": (lambda g, x: g.Mul(x, _const_like(g, x, 180.0 / math.pi)), True, True),
    "radians": (lambda g, x: g.Mul(x, _const_like(g, x, math.pi / 180.0)), True, True),
    "erf": (lambda g, x: g.Erf(x), False, True),
    "erfinv": (lambda g, x: _erfinv(g, x), False, True),
    "gamma": (lambda g, x: g.Exp(_lgamma(g, x)), False, True),
    "gammaln": (lambda g, x: _lgamma(g, x), False, True),
    "logical_not": (lambda g, x: g.cast(g.Not(g.cast(x, np.bool_)), g.dtype(x)), False, False),
    "_copy": (lambda g, x: g.Identity(x), False, True),
}
UNARY_ALIASES = {"_copy": ("identity",)}


def _lgamma(g, x):
    """log|Gamma(x)| for x > 0 by the Lanczos approximation (ONNX has no lgamma)."""
    coeffs = (676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
              12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7)
    one = _const_like(g, x, 1.0)
    z = g.Sub(x, one)
    acc = _const_like(g, x, 0.99999999999980993)
    for i, c in enumerate(coeffs):
        acc = g.Add(acc, g.Div(_const_like(g, x, c), g.Add(z, _const_like(g, x, i + 1.0))))
    t = g.Add(z, _const_like(g, x, 7.5))
    half_log_2pi = _const_like(g, x, 0.5 * math.log(2 * math.pi))
    return g.Add(g.Add(half_log_2pi, g.Mul(g.Add(z, _const_like(g, x, 0.5)), g.Log(t))),
                 g.Sub(g.Log(acc), t))


_ERFINV_CENTRAL = (2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087,
                   -0.00125372503, -0.00417768164, 0.246640727, 1.50140941)
_ERFINV_TAIL = (-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773, -0.0076224613,
                0.00943887047, 1.00167406, 2.83297682)


def _erfinv(g, x):
    """Inverse error function (ONNX has none): Giles' polynomial (single precision, "Approximating the erfinv
    function", 2010), then one Newton step on erf(y) = x; +-inf at +-1 and NaN outside [-1, 1], as MXNet.
    Computed in float32, where ONNX Runtime has Erf: float64 input gets float32 accuracy."""
    dtype = g.dtype(x)
    work = np.float32
    v = g.cast(x, work) if dtype != work else x
    c = lambda value: g.scalar(value, work)
    w = g.Neg(g.Log(g.Mul(g.Sub(c(1), v), g.Add(c(1), v))))

    def poly(t, coeffs):
        p = c(coeffs[0])
        for coeff in coeffs[1:]:
            p = g.Add(c(coeff), g.Mul(p, t))
        return p
    central = poly(g.Sub(w, c(2.5)), _ERFINV_CENTRAL)
    tail = poly(g.Sub(g.Sqrt(g.Max(w, c(5))), c(3)), _ERFINV_TAIL)
    y = g.Mul(g.Where(g.Less(w, c(5)), central, tail), v)
    slope = g.Mul(c(2 / math.sqrt(math.pi)), g.Exp(g.Neg(g.Mul(y, y))))
    y = g.Sub(y, g.Div(g.Sub(g.Erf(y), v), slope))
    y = g.Where(g.Equal(g.Abs(v), c(1)), g.Mul(v, c(math.inf)), y)
    return g.cast(y, dtype) if dtype != work else y


def _one(g, x):
    return g.scalar(1, g.dtype(x))


# float64 forms of the ops whose ONNX kernels ORT's CPU provider has for float32 only (MXNet computes them in
# double): identities over Sin/Cos/Exp/Log/Sqrt, which have float64 kernels, short Taylor series where those
# identities cancel (|x| < 0.01), and arctan as ORT's float32 value refined by two Newton steps in double (Cos
# through Sin: ORT before 1.32 has no float64 Cos).
def _taylor(g, x, coeffs):
    """x * (c0 + c1 x^2 + c2 x^4 + ...)."""
    x2 = g.Mul(x, x)
    acc = g.scalar(coeffs[-1], g.dtype(x))
    for coeff in reversed(coeffs[:-1]):
        acc = g.Add(g.scalar(coeff, g.dtype(x)), g.Mul(acc, x2))
    return g.Mul(x, acc)


def _small_or(g, x, small, large, bound=0.01):
    return g.Where(g.Less(g.Abs(x), g.scalar(bound, g.dtype(x))), small, large)


def _cos64(g, x):
    """cos of a float64 tensor: ORT's Cos from 1.32 on; before, 1 - 2 sin^2(x / 2) (a float64 Sin but no Cos)."""
    if _ORT_VERSION >= (1, 32):
        return g.Cos(x)
    half = g.Sin(g.Mul(x, g.scalar(0.5, np.float64)))
    return g.Sub(g.scalar(1.0, np.float64), g.Mul(g.scalar(2.0, np.float64), g.Mul(half, half)))


_ORT_VERSION = tuple(int(part) for part in ort.__version__.split(".")[:2])


def _atan64(g, x):
    c = lambda v: g.scalar(v, np.float64)
    big = g.Greater(g.Abs(x), c(1))
    u = g.Where(big, g.Reciprocal(x), x)                  # |u| <= 1 (1/inf = 0)
    y = g.cast(g.Atan(g.cast(u, np.float32)), np.float64)
    for _ in range(2):                                    # Newton on tan(y) = u: y -= cos y (sin y - u cos y)
        cos = _cos64(g, y)
        y = g.Sub(y, g.Mul(cos, g.Sub(g.Sin(y), g.Mul(u, cos))))
    return g.Where(big, g.Sub(g.Mul(g.Sign(x), c(math.pi / 2)), y), y)


def _erf64(g, x):
    """erf(x) = 2/sqrt(pi) exp(-x^2) sum_n 2^n x^(2n+1) / (2n+1)!! (positive terms: no cancellation), |x| clamped
    to 6 where erf is 1.0 in double; 150 terms reach double precision there."""
    c = lambda v: g.scalar(v, np.float64)
    v = g.Clip(x, c(-6.0), c(6.0))
    x2 = g.Mul(v, v)
    term = total = v
    for n in range(1, 150):
        term = g.Mul(term, g.Mul(x2, c(2.0 / (2 * n + 1))))
        total = g.Add(total, term)
    return g.Mul(g.Mul(c(2 / math.sqrt(math.pi)), g.Exp(g.Neg(x2))), total)


def _sqrt_one_minus_square(g, x):
    one = _one(g, x)
    return g.Sqrt(g.Mul(g.Sub(one, x), g.Add(one, x)))


_FLOAT64_FORMS = {
    "tan": lambda g, x: g.Div(g.Sin(x), _cos64(g, x)),
    "sinh": lambda g, x: _small_or(g, x, _taylor(g, x, (1.0, 1 / 6, 1 / 120, 1 / 5040)),
                                   g.Mul(g.scalar(0.5, np.float64), g.Sub(g.Exp(x), g.Exp(g.Neg(x))))),
    "cosh": lambda g, x: g.Mul(g.scalar(0.5, np.float64), g.Add(g.Exp(x), g.Exp(g.Neg(x)))),
    "arcsinh": lambda g, x: _small_or(g, x, _taylor(g, x, (1.0, -1 / 6, 3 / 40, -15 / 336)),
                                      g.Mul(g.Sign(x), g.Log(g.Add(g.Abs(x), g.Sqrt(g.Add(g.Mul(x, x), _one(g, x))))))),
    "arccosh": lambda g, x: g.Log(g.Add(x, g.Sqrt(g.Mul(g.Sub(x, _one(g, x)), g.Add(x, _one(g, x)))))),
    "arctanh": lambda g, x: _small_or(g, x, _taylor(g, x, (1.0, 1 / 3, 1 / 5, 1 / 7)),
                                      g.Mul(g.scalar(0.5, np.float64),
                                            g.Log(g.Div(g.Add(_one(g, x), x), g.Sub(_one(g, x), x))))),
    "arctan": _atan64,
    "arcsin": lambda g, x: _atan64(g, g.Div(x, _sqrt_one_minus_square(g, x))),
    "arccos": lambda g, x: g.Mul(g.scalar(2.0, np.float64),
                                 _atan64(g, g.Sqrt(g.Div(g.Sub(_one(g, x), x), g.Add(_one(g, x), x))))),
    "erf": _erf64,
}


def erf(g, x):
    """erf of a float tensor (float64 in double precision, where ORT has only a float32 Erf)."""
    if g.dtype(x) == np.float64:
        return g.with_gradient(_erf64(g, x), lambda: [(x, _DERIVATIVES_64["erf"](g, x, None))])
    return g.Erf(x)


# d(out)/d(data) for unary ops whose ONNX form has no onnxruntime-training gradient.
DERIVATIVES = {
    "arcsin": lambda g, x, y: g.Reciprocal(g.Sqrt(g.Sub(_one(g, x), g.Mul(x, x)))),
    "arccos": lambda g, x, y: g.Neg(g.Reciprocal(g.Sqrt(g.Sub(_one(g, x), g.Mul(x, x))))),
    "arctan": lambda g, x, y: g.Reciprocal(g.Add(_one(g, x), g.Mul(x, x))),
    "sinh": lambda g, x, y: g.Cosh(x),
    "cosh": lambda g, x, y: g.Sinh(x),
    "tan": lambda g, x, y: g.Add(_one(g, x), g.Mul(y, y)),
    "arcsinh": lambda g, x, y: g.Reciprocal(g.Sqrt(g.Add(g.Mul(x, x), _one(g, x)))),
    "arccosh": lambda g, x, y: g.Reciprocal(g.Sqrt(g.Sub(g.Mul(x, x), _one(g, x)))),
    "arctanh": lambda g, x, y: g.Reciprocal(g.Sub(_one(g, x), g.Mul(x, x))),
    "erfinv": lambda g, x, y: g.Mul(g.scalar(math.sqrt(math.pi) / 2, g.dtype(x)), g.Exp(g.Mul(y, y))),
    "cbrt": lambda g, x, y: g.Reciprocal(g.Mul(g.scalar(3, g.dtype(x)), g.Mul(y, y))),
    "rcbrt": lambda g, x, y: g.Div(g.Neg(y), g.Mul(g.scalar(3, g.dtype(x)), x)),
}
# float64 forms are differentiated through their derivative (their nodes are a computation, not the function)
_DERIVATIVES_64 = dict(DERIVATIVES, erf=lambda g, x, y: g.Mul(g.scalar(2 / math.sqrt(math.pi), g.dtype(x)),
                                                              g.Exp(g.Neg(g.Mul(x, x)))),
                       sinh=lambda g, x, y: _FLOAT64_FORMS["cosh"](g, x),
                       cosh=lambda g, x, y: _FLOAT64_FORMS["sinh"](g, x))


# Integer inputs. MXNet computes integer math in double and truncates back to the integer type (exp(7) -> 1096,
# tanh(12) -> 0, sqrt(-3) -> INT_MIN, unsigned results wrap: negative(uint8 1) -> 255); ONNX's float ops take no
# integer tensors. Ops exact on integers keep their integer kernels where ORT has them; ops with no float64
# kernel in ORT's CPU provider (erf, cos, tan, the inverse and hyperbolic trig ones) or no exact float64 form here
# (gamma's Lanczos series misses gamma(1) = 1) refuse integers with a clear error (DEVIATIONS.md).
_INTEGER_KERNELS = {"abs": "iub", "sign": "iub", "_copy": "iub", "logical_not": "iub", "negative": "i",
                    "square": "i"}
_FLOAT_ONLY = {"erf", "erfinv", "gamma", "gammaln", "cos", "tan", "arcsin", "arccos", "arctan", "sinh", "cosh", "arcsinh",
               "arccosh", "arctanh"}


class _Unary(OpDef):
    _lower = None
    differentiable = True
    infer_shape = same_shape_rule

    def lower(self, g, data):
        dtype = np.dtype(g.dtype(data))
        if dtype.kind in "iub" and dtype.kind not in _INTEGER_KERNELS.get(self.op_name, ""):
            return self._integer_math(g, data, dtype)
        if dtype == np.float64 and self.op_name in _FLOAT64_FORMS:
            out = _FLOAT64_FORMS[self.op_name](g, data)
            derivative = _DERIVATIVES_64[self.op_name]
            return g.with_gradient(out, lambda: [(data, derivative(g, data, out))])
        out = type(self)._lower(g, data)
        derivative = DERIVATIVES.get(self.op_name)
        return out if derivative is None else g.with_gradient(out, lambda: [(data, derivative(g, data, out))])

    def _integer_math(self, g, data, dtype):
        if self.op_name in _FLOAT_ONLY:
            raise MXNetError("%s takes floating-point input, got %s: cast it first (x.astype('float32'))"
                             % (self.op_name, dtype.name))
        wide = g.cast(data, np.float64)
        g.set_info(wide, g.shape(data), np.float64)
        out = type(self)._lower(g, wide)
        if dtype.kind == "i":
            return g.cast(out, dtype)
        return g.cast(g.cast(out, np.int64), dtype)     # unsigned and bool results wrap, as a C cast does


for _name, (_fn, _fluent, _diff) in UNARY.items():
    register(type(_name, (_Unary,), {
        "__module__": __name__, "aliases": UNARY_ALIASES.get(_name, ()), "fluent": (_name,) if _fluent else (),
        "_lower": staticmethod(_fn), "differentiable": _diff,
        "__doc__": "%s(data) elementwise (MXNet %s)." % (_name, _name)}))

del _name, _key, _aliases, _reverse, _alias, _fn, _fluent, _diff
