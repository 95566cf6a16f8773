"""VJP rules of elementwise ONNX ops (broadcasting binary ops sum their gradients back to each input's shape)."""
import numpy as np

from ...base import MXNetError
from ...lower.builder import onnx_dtype
from ...ops.elemwise import power_partials
from .registry import no_gradient, rule

# Outputs that are booleans, integers or piecewise constant: no gradient flows through them.
rule("Equal", "Greater", "GreaterOrEqual", "Less", "LessOrEqual", "And", "Or", "Xor", "Not", "IsNaN", "IsInf",
     "Floor", "Ceil", "Round", "Sign", "Shape", "Size", "ArgMax", "ArgMin", "ConstantOfShape", "Constant",
     "RandomUniformLike", "RandomNormalLike", "RandomUniform", "RandomNormal", "Bernoulli", "Multinomial",
     "BitShift", "NonZero", "EyeLike", "Range")(no_gradient)


@rule("Identity")
def _identity(g, node, out_grads):
    return [out_grads[0]]


@rule("Add", "Sum")
def _add(g, node, out_grads):
    dy = out_grads[0]
    return [g.unbroadcast(dy, x) for x in node.input]


@rule("Sub")
def _sub(g, node, out_grads):
    a, b = node.input
    dy = out_grads[0]
    return [g.unbroadcast(dy, a), g.unbroadcast(g.like(g.Neg(dy), dy), b)]


@rule("Mul")
def _mul(g, node, out_grads):
    a, b = node.input
    dy = out_grads[0]
    return [g.unbroadcast(g.like(g.Mul(dy, b), dy), a), g.unbroadcast(g.like(g.Mul(dy, a), dy), b)]


@rule("Div")
def _div(g, node, out_grads):
    a, b = node.input
    y, dy = node.output[0], out_grads[0]
    da = g.like(g.Div(dy, b), dy)
    db = g.like(g.Neg(g.Div(g.Mul(dy, y), b)), dy)        # d(a/b)/db = -a/b^2 = -y/b
    return [g.unbroadcast(da, a), g.unbroadcast(db, b)]


@rule("Neg")
def _neg(g, node, out_grads):
    return [g.Neg(out_grads[0])]


@rule("Relu")
def _relu(g, node, out_grads):
    """dy * (y > 0) as a comparison and a multiply (5x faster than ORT's single-threaded ReluGrad). From the
    output, as MXNet's: y > 0 exactly where x > 0, and the training graph then keeps y alone (the next layer's
    weight gradient reads it anyway) instead of x as well (ResNet-18 at batch 16: a BatchNorm output per unit)."""
    y = node.output[0]
    return [g.Mul(out_grads[0], g.cast(g.Greater(y, g.scalar_like(0, y)), g.dtype(y)))]


@rule("LeakyRelu")
def _leaky_relu(g, node, out_grads):
    x = node.input[0]
    alpha = g.attrs(node).get("alpha", 0.01)
    return [g.Mul(out_grads[0], g.Where(g.Greater(x, g.scalar_like(0, x)), g.scalar_like(1, x), g.scalar_like(alpha, x)))]


@rule("Sigmoid")
def _sigmoid(g, node, out_grads):
    y = node.output[0]
    return [g.Mul(out_grads[0], g.Mul(y, g.Sub(g.scalar_like(1, y), y)))]


@rule("Tanh")
def _tanh(g, node, out_grads):
    y = node.output[0]
    return [g.Mul(out_grads[0], g.Sub(g.scalar_like(1, y), g.Mul(y, y)))]


@rule("Exp")
def _exp(g, node, out_grads):
    return [g.Mul(out_grads[0], node.output[0])]


@rule("Log")
def _log(g, node, out_grads):
    return [g.Div(out_grads[0], node.input[0])]


@rule("Sqrt")
def _sqrt(g, node, out_grads):
    y = node.output[0]
    return [g.Div(out_grads[0], g.Mul(g.scalar_like(2, y), y))]


@rule("Reciprocal")
def _reciprocal(g, node, out_grads):
    y = node.output[0]
    return [g.Neg(g.Mul(out_grads[0], g.Mul(y, y)))]


@rule("Abs")
def _abs(g, node, out_grads):
    x = node.input[0]
    if not g.floating(x):
        return [None]
    return [g.Mul(out_grads[0], g.Sign(x))]


@rule("Sin")
def _sin(g, node, out_grads):
    return [g.Mul(out_grads[0], g.Cos(node.input[0]))]


@rule("Cos")
def _cos(g, node, out_grads):
    return [g.Neg(g.Mul(out_grads[0], g.Sin(node.input[0])))]


@rule("Erf")
def _erf(g, node, out_grads):
    x = node.input[0]
    scale = g.scalar_like(2 / np.sqrt(np.pi), x)
    return [g.Mul(out_grads[0], g.Mul(scale, g.Exp(g.Neg(g.Mul(x, x)))))]


@rule("Cast")
def _cast(g, node, out_grads):
    """The gradient cast back to the input's dtype; none for integer or boolean ends."""
    x, y = node.input[0], node.output[0]
    if not (g.floating(x) and g.floating(y)):
        return [None]
    return [g.Cast(out_grads[0], to=onnx_dtype(g.dtype(x)))]


@rule("Pow")
def _pow(g, node, out_grads):
    """The partials of ops/elemwise.py's power_partials (the one definition of a^b's derivatives and their
    conventions at b == 0, a == 0 and a < 0), times dy, summed back to each input's shape."""
    a, b = node.input
    y, dy = node.output[0], out_grads[0]
    b_as_a = b if g.dtype(b) == g.dtype(a) else g.cast(b, g.dtype(a))
    d_base, d_exponent = power_partials(g, a, b_as_a, y)
    grads = [g.unbroadcast(g.like(g.Mul(dy, d_base), dy), a)]
    if g.floating(b):
        db = g.like(g.Mul(dy, d_exponent), dy)
        if g.dtype(b) != g.dtype(a):
            db = g.like(g.cast(db, g.dtype(b)), dy)
        grads.append(g.unbroadcast(db, b))
    return grads


@rule("Where")
def _where(g, node, out_grads):
    condition, x, y = node.input
    dy = out_grads[0]
    zero = g.scalar_like(0, x)
    dx = g.like(g.Where(condition, dy, zero), dy)
    dz = g.like(g.Where(condition, zero, dy), dy)
    return [None, g.unbroadcast(dx, x), g.unbroadcast(dz, y)]


@rule("Max", "Min")
def _max_min(g, node, out_grads):
    """The gradient goes to the inputs equal to the result (split evenly among ties, as PyTorch's)."""
    y, dy = node.output[0], out_grads[0]
    masks = [g.cast(g.Equal(x, y), g.dtype(y)) for x in node.input]
    count = masks[0]
    for mask in masks[1:]:
        count = g.Add(count, mask)
    share = g.like(g.Div(dy, count), dy)
    return [g.unbroadcast(g.like(g.Mul(share, mask), dy), x) for x, mask in zip(node.input, masks)]


@rule("Clip")
def _clip(g, node, out_grads):
    """ONNX's Clip is min(max(x, low), high): x gets dy where low <= x <= high; low where x < low (and low <= high);
    high where max(x, low) > high."""
    inputs = list(node.input) + ["", ""]
    x, low, high = inputs[:3]
    dy = out_grads[0]
    zero = g.scalar_like(0, x)
    below = g.Less(x, low) if low else None
    above = g.Greater(g.Max(x, low) if low else x, high) if high else None
    outside = below if not above else above if not below else g.Or(below, above)
    dx = dy if outside is None else g.Where(outside, zero, dy)
    grads = [dx]
    if low:
        take = below if not above else g.And(below, g.Not(above))
        grads.append(g.ReduceSum(g.Where(take, dy, zero), keepdims=0))
    else:
        grads.append(None)
    if high:
        grads.append(g.ReduceSum(g.Where(above, dy, zero), keepdims=0))
    return grads


@rule("Dropout")
def _dropout(g, node, out_grads):
    """dy * mask / (1 - ratio) in training mode (the mask output the lowering declares), dy otherwise."""
    inputs = list(node.input) + ["", ""]
    x, ratio, training = inputs[:3]
    dy = out_grads[0]
    mode = g.constant(training) if training else np.array(False)
    if mode is None or bool(mode) is False or len(node.output) < 2 or not node.output[1]:
        if mode is None:
            raise MXNetError("the gradient of Dropout needs a constant training_mode (node %s)" % node.name)
        return [dy]
    rate = g.constant(ratio) if ratio else np.array(0.5)
    if rate is not None:
        scale = g.scalar(1.0 / (1.0 - float(rate)), g.dtype(x))
    else:       # a ratio computed in the graph (the ratio itself is a setting: no gradient)
        one = g.scalar(1, g.dtype(x))
        scale = g.Div(one, g.Sub(one, g.cast(ratio, g.dtype(x))))
    return [g.Mul(g.Mul(dy, g.cast(node.output[1], g.dtype(x))), scale)]
