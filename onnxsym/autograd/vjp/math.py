"""VJP rules of the remaining elementwise math ONNX ops: inverse trigonometric and hyperbolic functions, the
activation family (Elu, Selu, Celu, HardSigmoid, HardSwish, Shrink, ThresholdedRelu, Softplus, Softsign, Gelu,
Mish, PRelu), fmod, the variadic Sum and Mean, CastLike, Det and com.microsoft Inverse.

Derivatives read the forward output where it is cheaper than recomputing (Tan: 1 + y^2, Elu: y + alpha). Where a
function has a kink the derivative at the kink is PyTorch's (Elu, Selu, Celu: the negative side's at 0; HardSwish:
x / 3 + 1/2 at +-3; Shrink, ThresholdedRelu, PRelu: 0 or the slope at the threshold, as the forward's strict
comparisons)."""
import numpy as np

from ...lower.builder import onnx_dtype
from .registry import no_gradient, rule
from .shape import static_shape

# Piecewise constant (a one-hot of the row maxima), or integer (quantized) values: no gradient.
rule("Hardmax", "MatMulInteger", "ConvInteger", "QLinearMatMul", "QLinearConv", "QuantizeLinear")(no_gradient)
# A filter bank computed from settings (bin counts, sample rate, band edges): no gradient.
rule("MelWeightMatrix")(no_gradient)
# Decision trees and thresholds are piecewise constant in their inputs: no gradient.
rule("Binarizer", "TreeEnsemble", "TreeEnsembleRegressor", "TreeEnsembleClassifier", domain="ai.onnx.ml")(no_gradient)


@rule("DequantizeLinear")
def _dequantize_linear(g, node, out_grads):
    """y = (x - zero_point) * scale, the scale per tensor, per slice along `axis` or per block of `block_size`
    along it: d scale = dy * (x - zero_point) summed over what each scale covers. x and the zero point are
    integers: no gradient."""
    x, scale = node.input[:2]
    zero = node.input[2] if len(node.input) > 2 and node.input[2] else None
    attrs = g.attrs(node)
    dtype = g.dtype(scale)
    shifted = g.cast(x, dtype)
    if zero is not None:
        shifted = g.Sub(shifted, _repeated_blocks(g, g.cast(zero, dtype), node, attrs))
    g.set_info(shifted, static_shape(g, x), dtype)
    part = g.Mul(g.cast(out_grads[0], dtype), shifted)
    x_shape, s_shape = static_shape(g, x), static_shape(g, scale)
    rank, axis = len(x_shape), attrs.get("axis", 1) % max(len(x_shape), 1)
    if not s_shape:                                         # per tensor
        return [None, g.reshape_to(g.ReduceSum(part, keepdims=0), ())]
    if len(s_shape) == 1 and not attrs.get("block_size", 0):     # per axis
        others = [a for a in range(rank) if a != axis]
        return [None, g.reshape_to(g.ReduceSum(part, g.int64s(others), keepdims=0) if others else part, s_shape)]
    block = attrs["block_size"]                            # blocked: the axis split into (blocks, block)
    blocks = s_shape[axis]
    padded = blocks * block - x_shape[axis]
    if padded:
        part = g.Pad(part, g.int64s([0] * rank + [padded if a == axis else 0 for a in range(rank)]))
    split = list(x_shape[:axis]) + [blocks, block] + list(x_shape[axis + 1:])
    summed = g.ReduceSum(g.Reshape(part, g.int64s(split)), g.int64s([axis + 1]), keepdims=0)
    return [None, g.reshape_to(summed, s_shape)]


def _repeated_blocks(g, value, node, attrs):
    """A blocked zero point repeated to the input's shape (other layouts broadcast as they are)."""
    block = attrs.get("block_size", 0)
    x_shape, v_shape = static_shape(g, node.input[0]), static_shape(g, node.input[2])
    if not block:
        if len(v_shape) == 1 and len(x_shape) > 1:
            axis = attrs.get("axis", 1) % len(x_shape)
            return g.Reshape(value, g.int64s([v_shape[0] if a == axis else 1 for a in range(len(x_shape))]))
        return value
    axis = attrs.get("axis", 1) % len(x_shape)
    repeated = g.Reshape(g.Expand(g.Unsqueeze(value, g.int64s([axis + 1])),
                                  g.int64s(list(v_shape[:axis + 1]) + [block] + list(v_shape[axis + 1:]))),
                         g.int64s(list(v_shape[:axis]) + [v_shape[axis] * block] + list(v_shape[axis + 1:])))
    return g.Slice(repeated, g.int64s([0]), g.int64s([x_shape[axis]]), g.int64s([axis]))


@rule("DynamicQuantizeLinear")
def _dynamic_quantize_linear(g, node, out_grads):
    """Only y_scale = (max(0, max x) - min(0, min x)) / 255 is a real number: its gradient goes to the maximum
    (where above 0) and the minimum (where below 0), split evenly among ties. y and the zero point are integers."""
    if len(out_grads) < 2 or out_grads[1] is None:
        return [None]
    x = node.input[0]
    zero = g.scalar_like(0, x)
    parts = []
    for reduce, beyond in (("ReduceMax", "Greater"), ("ReduceMin", "Less")):
        extreme = getattr(g, reduce)(x, keepdims=0)
        hit = g.cast(g.And(g.Equal(x, extreme), getattr(g, beyond)(extreme, zero)), g.dtype(x))
        parts.append(g.Div(hit, g.Max(g.ReduceSum(hit, keepdims=0), g.scalar_like(1, x))))
    slope = g.Mul(g.Sub(parts[0], parts[1]), g.scalar_like(1.0 / 255.0, x))
    return [g.like(g.Mul(slope, g.cast(out_grads[1], g.dtype(x))), x)]


def _unary(*op_types):
    """A rule `dy * derivative(g, x, y, attrs)` for one-input elementwise ops."""
    def register(derivative):
        def vjp(g, node, out_grads):
            x, y = node.input[0], node.output[0]
            return [g.Mul(out_grads[0], derivative(g, x, y, g.attrs(node)))]
        vjp.__doc__ = derivative.__doc__
        rule(*op_types)(vjp)
        return derivative
    return register


@_unary("Asin")
def _asin(g, x, y, attrs):
    """1 / sqrt(1 - x^2)."""
    return g.Reciprocal(g.Sqrt(g.Sub(g.scalar_like(1, x), g.Mul(x, x))))


@_unary("Acos")
def _acos(g, x, y, attrs):
    """-1 / sqrt(1 - x^2)."""
    return g.Neg(g.Reciprocal(g.Sqrt(g.Sub(g.scalar_like(1, x), g.Mul(x, x)))))


@_unary("Atan")
def _atan(g, x, y, attrs):
    """1 / (1 + x^2)."""
    return g.Reciprocal(g.Add(g.scalar_like(1, x), g.Mul(x, x)))


@_unary("Asinh")
def _asinh(g, x, y, attrs):
    """1 / sqrt(x^2 + 1)."""
    return g.Reciprocal(g.Sqrt(g.Add(g.Mul(x, x), g.scalar_like(1, x))))


@_unary("Acosh")
def _acosh(g, x, y, attrs):
    """1 / sqrt(x^2 - 1)."""
    return g.Reciprocal(g.Sqrt(g.Sub(g.Mul(x, x), g.scalar_like(1, x))))


@_unary("Atanh")
def _atanh(g, x, y, attrs):
    """1 / (1 - x^2)."""
    return g.Reciprocal(g.Sub(g.scalar_like(1, x), g.Mul(x, x)))


@_unary("Sinh")
def _sinh(g, x, y, attrs):
    return g.Cosh(x)


@_unary("Cosh")
def _cosh(g, x, y, attrs):
    return g.Sinh(x)


@_unary("Tan")
def _tan(g, x, y, attrs):
    """1 + tan(x)^2."""
    return g.Add(g.scalar_like(1, y), g.Mul(y, y))


@_unary("Softplus")
def _softplus(g, x, y, attrs):
    return g.Sigmoid(x)


@_unary("Softsign")
def _softsign(g, x, y, attrs):
    """1 / (1 + |x|)^2."""
    denominator = g.Add(g.scalar_like(1, x), g.Abs(x))
    return g.Reciprocal(g.Mul(denominator, denominator))


def _mask(g, condition, like):
    """A 0/1 tensor of `like`'s dtype: an arithmetic select is 3-4x faster than ORT's Where (bench/)."""
    return g.cast(condition, g.dtype(like))


@_unary("Elu")
def _elu(g, x, y, attrs):
    """1 for x > 0, alpha * exp(x) = y + alpha otherwise: 1 + [x <= 0] (y + alpha - 1)."""
    below = _mask(g, g.LessOrEqual(x, g.scalar_like(0, x)), x)
    return g.Add(g.scalar_like(1, x), g.Mul(below, g.Add(y, g.scalar_like(attrs.get("alpha", 1.0) - 1.0, x))))


@_unary("Selu")
def _selu(g, x, y, attrs):
    """gamma for x > 0, gamma * alpha * exp(x) = y + gamma * alpha otherwise."""
    alpha, gamma = attrs.get("alpha", 1.67326319217681884765625), attrs.get("gamma", 1.05070102214813232421875)
    below = _mask(g, g.LessOrEqual(x, g.scalar_like(0, x)), x)
    return g.Add(g.scalar_like(gamma, x), g.Mul(below, g.Add(y, g.scalar_like(gamma * alpha - gamma, x))))


@_unary("Celu")
def _celu(g, x, y, attrs):
    """1 for x > 0, exp(x / alpha) = y / alpha + 1 otherwise."""
    below = _mask(g, g.LessOrEqual(x, g.scalar_like(0, x)), x)
    return g.Add(g.scalar_like(1, x), g.Mul(below, g.Mul(y, g.scalar_like(1.0 / attrs.get("alpha", 1.0), x))))


@_unary("HardSigmoid")
def _hard_sigmoid(g, x, y, attrs):
    """alpha where 0 < alpha * x + beta < 1 (there y is strictly between its bounds), else 0."""
    inside = _mask(g, g.And(g.Greater(y, g.scalar_like(0, y)), g.Less(y, g.scalar_like(1, y))), x)
    return g.Mul(inside, g.scalar_like(attrs.get("alpha", 0.2), x))


@_unary("HardSwish")
def _hard_swish(g, x, y, attrs):
    """x * clip(x / 6 + 1/2, 0, 1): 0 below -3, 1 above 3, x / 3 + 1/2 between (PyTorch's at +-3)."""
    inside = _mask(g, g.LessOrEqual(g.Abs(x), g.scalar_like(3, x)), x)
    above = _mask(g, g.Greater(x, g.scalar_like(3, x)), x)
    return g.Add(g.Mul(inside, g.Add(g.Mul(x, g.scalar_like(1.0 / 3.0, x)), g.scalar_like(0.5, x))), above)


@_unary("Shrink")
def _shrink(g, x, y, attrs):
    """1 where |x| > lambd (the forward's strict comparisons), else 0."""
    return g.cast(g.Greater(g.Abs(x), g.scalar_like(attrs.get("lambd", 0.5), x)), g.dtype(x))


@_unary("ThresholdedRelu")
def _thresholded_relu(g, x, y, attrs):
    return g.cast(g.Greater(x, g.scalar_like(attrs.get("alpha", 1.0), x)), g.dtype(x))


@_unary("Gelu")
def _gelu(g, x, y, attrs):
    """(opset 20) none: Phi(x) + x phi(x); tanh: 1/2 (1 + t) + 1/2 x (1 - t^2) sqrt(2/pi) (1 + 3 k x^2) with
    t = tanh(sqrt(2/pi) (x + k x^3)), k = 0.044715. (Phi as Erf: 1.3x faster than reading it back as y / x.)"""
    c = lambda v: g.scalar_like(v, x)
    square = g.Mul(x, x)
    if attrs.get("approximate", b"none") in ("tanh", b"tanh"):
        scale, k = np.sqrt(2 / np.pi), 0.044715
        t = g.Tanh(g.Mul(g.Mul(x, c(scale)), g.Add(c(1), g.Mul(square, c(k)))))
        slope = g.Mul(g.Sub(c(1), g.Mul(t, t)), g.Add(c(scale), g.Mul(square, c(3 * k * scale))))
        return g.Mul(c(0.5), g.Add(g.Add(c(1), t), g.Mul(x, slope)))
    cdf = g.Mul(c(0.5), g.Add(c(1), g.Erf(g.Mul(x, c(1 / np.sqrt(2))))))
    pdf = g.Mul(c(1 / np.sqrt(2 * np.pi)), g.Exp(g.Mul(square, c(-0.5))))
    return g.Add(cdf, g.Mul(x, pdf))


@_unary("Mish")
def _mish(g, x, y, attrs):
    """x tanh(softplus(x)): t + x sigmoid(x) (1 - t^2) with t = tanh(softplus(x))."""
    t = g.Tanh(g.Softplus(x))
    return g.Add(t, g.Mul(g.Mul(x, g.Sigmoid(x)), g.Sub(g.scalar_like(1, x), g.Mul(t, t))))


@rule("PRelu")
def _prelu(g, node, out_grads):
    """y = x where x > 0, slope * x otherwise (the slope broadcasts to x): dx = dy or dy * slope (the slope at 0,
    as PyTorch's), dslope = dy * min(x, 0), summed back to the slope's shape."""
    x, slope = node.input
    dy = out_grads[0]
    above = _mask(g, g.Greater(x, g.scalar_like(0, x)), x)
    dx = g.like(g.Mul(dy, g.Add(slope, g.Mul(above, g.Sub(g.scalar_like(1, x), slope)))), x)
    dslope = g.like(g.Mul(dy, g.Min(x, g.scalar_like(0, x))), x)
    return [g.unbroadcast(dx, x), g.unbroadcast(dslope, slope)]


@rule("Mod")
def _mod(g, node, out_grads):
    """fmod (the only Mod of floats): a - trunc(a / b) * b, so da = dy, db = -dy * trunc(a / b), the quotient
    read back exactly as round((a - y) / b). Integer Mod: no gradient."""
    a, b = node.input
    y, dy = node.output[0], out_grads[0]
    if not g.floating(y):
        return [None, None]
    quotient = g.Round(g.Div(g.Sub(a, y), b))
    db = g.like(g.Neg(g.Mul(dy, quotient)), y)
    return [g.unbroadcast(dy, a), g.unbroadcast(db, b)]


@rule("Mean")
def _mean(g, node, out_grads):
    y, dy = node.output[0], out_grads[0]
    share = g.like(g.Mul(dy, g.scalar_like(1.0 / len(node.input), y)), y) if len(node.input) > 1 else dy
    return [g.unbroadcast(share, x) for x in node.input]


@rule("CastLike")
def _cast_like(g, node, out_grads):
    """The gradient cast back to the input's dtype (none for integer or boolean ends); the target gets none."""
    x, y = node.input[0], node.output[0]
    if not (g.floating(x) and g.floating(y)):
        return [None, None]
    dy = out_grads[0]
    return [dy if g.dtype(x) == g.dtype(y) else g.Cast(dy, to=onnx_dtype(g.dtype(x))), None]


@rule("Det")
def _det(g, node, out_grads):
    """d det(A) / dA = det(A) inv(A)^T (Jacobi's formula; com.microsoft Inverse, which CPU and CUDA builds ship).
    A singular matrix gets inf/NaN, where PyTorch's SVD-based backward gives the adjugate."""
    a = node.input[0]
    y, dy = node.output[0], out_grads[0]
    rank = len(static_shape(g, a))
    scale = g.Unsqueeze(g.Mul(dy, y), g.int64s([-2, -1]))
    inverse = g.Inverse(a, _domain="com.microsoft")
    transposed = g.Transpose(inverse, perm=list(range(rank - 2)) + [rank - 1, rank - 2])
    return [g.like(g.Mul(scale, transposed), a)]


@rule("Inverse", domain="com.microsoft")
def _inverse(g, node, out_grads):
    """d inv(A) = -inv(A) dA inv(A), so dA = -inv(A)^T dY inv(A)^T (MXNet la_op-inl.h inverse_backward)."""
    a, y, dy = node.input[0], node.output[0], out_grads[0]
    rank = len(static_shape(g, a))
    transposed = g.Transpose(y, perm=list(range(rank - 2)) + [rank - 1, rank - 2])
    return [g.like(g.Neg(g.MatMul(g.MatMul(transposed, dy), transposed)), a)]
