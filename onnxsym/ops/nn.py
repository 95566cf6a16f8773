"""Dense layers and activations: FullyConnected, Activation, LeakyReLU."""
import math

import numpy as np

from .._shapes import fmt, is_complete, partial_rule, same_shape_rule
from ..base import MXNetError
from .elemwise import erf
from .params import param
from .registry import OpDef, register


def _prod(dims):
    return int(math.prod(dims))


@register
class FullyConnected(OpDef):
    """Y = flatten(data) @ weight.T + bias. Mirrors MXNet src/operator/nn/fully_connected.cc."""
    float_only = True       # MXNet 1.9.1 on int32: "Unsupported type 4"; ORT has no integer Gemm
    num_hidden: int = param(min=1, doc="Number of hidden nodes of the output.")
    no_bias: bool = param(False, doc="Whether to disable the bias parameter.")
    flatten: bool = param(True, doc="Whether to collapse all but the first axis of the input data tensor.")

    def input_names(self):
        return ("data", "weight") if self.no_bias else ("data", "weight", "bias")

    @partial_rule
    def infer_shape(self, data, weight=None, bias=None, out_shapes=None):
        # As MXNet: data's rank must be known (weight alone decides nothing); an unknown dimension of data leaves
        # the matching ones of weight and output unknown; the output gives data its batch size (only) back.
        if data is None:
            return None
        if self.flatten:
            k = None if None in data[1:] else _prod(data[1:])
            out = (data[0], self.num_hidden)
        else:
            k = data[-1]
            out = (*data[:-1], self.num_hidden)
        known_out = out_shapes[0] if out_shapes else None
        if known_out is not None and len(known_out) == len(out) and known_out[0] is not None:
            data = (known_out[0],) + tuple(data[1:])
        # MXNet also accepts a (num_hidden, 1) bias
        bias_shape = bias if bias == (self.num_hidden, 1) else (self.num_hidden,)
        inputs = [data, (self.num_hidden, k), bias_shape]
        return inputs[: len(self.input_names())], [out]

    def lower(self, g, data, weight, bias=None):
        shape = g.shape(data)
        if self.flatten:
            x = data if len(shape) == 2 else g.Flatten(data, axis=1)
            return g.Gemm(x, weight, bias, transB=1)
        # (..., K) -> (-1, K) @ W.T -> (..., num_hidden). Not MatMul(Transpose(W)): ORT fuses that into
        # FusedMatMul, which has no float64 kernel in 1.19.2.
        y = g.Gemm(g.Reshape(data, g.int64s([-1, shape[-1]])), weight, bias, transB=1)
        return y if len(shape) == 2 else g.Reshape(y, g.int64s(list(shape[:-1]) + [self.num_hidden]))


_ACTIVATIONS = {
    "relu": lambda g, x: g.Relu(x),
    "sigmoid": lambda g, x: g.Sigmoid(x),
    "tanh": lambda g, x: g.Tanh(x),
    # softrelu = log(1 + exp(x)) written stably as max(x, 0) + log1p(exp(-|x|)); ORT has no Softplus gradient.
    "softrelu": lambda g, x: g.Add(g.Relu(x), g.Log(g.Add(g.Exp(g.Neg(g.Abs(x))), g.scalar(1, g.dtype(x))))),
    "softsign": lambda g, x: g.Div(x, g.Add(g.Abs(x), g.scalar(1, g.dtype(x)))),
}


@register
class Activation(OpDef):
    """Elementwise activation. Mirrors MXNet src/operator/nn/activation.cc."""
    float_only = True       # MXNet 1.9.1 on int32: "This operation only support floating point types"
    act_type: str = param(choices=tuple(_ACTIVATIONS), doc="Activation function to be applied.")
    infer_shape = same_shape_rule

    def lower(self, g, data):
        return _ACTIVATIONS[self.act_type](g, data)


def _relu_neg(g, x):
    """min(x, 0) as -Relu(-x): differentiable with ORT's stock gradient ops."""
    return g.Neg(g.Relu(g.Neg(x)))


def _elu(g, x, alpha):
    one = g.scalar(1, g.dtype(x))
    return g.Add(g.Relu(x), g.Mul(g.scalar(alpha, g.dtype(x)), g.Sub(g.Exp(_relu_neg(g, x)), one)))


# MXNet's SELU constants are C++ floats (mshadow_op.h): float32(1.0507009873554805), float32(1.6732632423543772)
_SELU_LAMBDA = np.float32(1.0507009873554804934193349852946)
_SELU_ALPHA = np.float32(1.6732632423543772848170429916717)


def _prelu_gamma_shape(gamma, data):
    """The shape gamma broadcasts to against `data`, as MXNet's LeakyReLU expand_shape: gamma's axes, aligned from
    the right, fill the batch and channel axes (0 and 1) where they equal data's or are 1; other axes get 1."""
    result, s = [1] * len(data), len(gamma) - 1
    for i in range(len(data) - 1, -1, -1):
        if s >= 0 and i <= 1 and gamma[s] in (data[i], 1):
            result[i] = gamma[s]
            s -= 1
    if s != -1:
        raise MXNetError("LeakyReLU(prelu): Cannot broadcast gamma to data. gamma: %s, data: %s"
                         % (fmt(gamma), fmt(data)))
    return result


@register
class LeakyReLU(OpDef):
    """Leaky family of rectifiers. Mirrors MXNet src/operator/leaky_relu-inl.h.

    leaky: x>0 ? x : slope*x; prelu: x>0 ? x : gamma*x (gamma (C,), (1,) or (N, C): it fills axes 0-1 from the right); elu: x>0 ? x : slope*(e^x-1);
    selu: lambda*elu_alpha(x); gelu: x*Phi(x) (erf form); rrelu: random slope in [lower, upper] when training,
    (lower+upper)/2 at inference.
    """
    float_only = True       # MXNet 1.9.1 on int32: "This operation only support floating point types"
    act_type: str = param("leaky", choices=("elu", "gelu", "leaky", "prelu", "rrelu", "selu"),
                          doc="Activation function to be applied.")
    slope: float = param(0.25, doc="Init slope for the activation (for leaky and elu).")
    lower_bound: float = param(0.125, doc="Lower bound of random slope (for rrelu only).")
    upper_bound: float = param(0.334, doc="Upper bound of random slope (for rrelu only).")

    def input_names(self):
        return ("data", "gamma") if self.act_type == "prelu" else ("data",)

    def output_names(self):
        return ("output", "mask") if self.act_type == "rrelu" else ("output",)

    def input_attrs(self, input_name):
        return {"__init__": '["Constant", {"value": 0.25}]'} if input_name == "gamma" else {}

    @partial_rule
    def infer_shape(self, data, gamma=None, out_shapes=None):
        # forwards only, as MXNet's LeakyReLUShape
        if data is None:
            return None
        outs = [data] * self.count_outputs()
        if self.act_type != "prelu":
            return [data], outs
        channels = data[1] if len(data) > 1 else 1
        if is_complete(gamma) and is_complete(data):
            _prelu_gamma_shape(gamma, data)
        return [data, gamma if gamma is not None else (channels,)], outs

    def lower(self, g, data, gamma=None):
        dtype = g.dtype(data)
        kind = self.act_type
        if kind == "leaky":
            out = g.LeakyRelu(data, alpha=self.slope)
        elif kind == "rrelu" and g.train_mode:
            # Training: one slope per element drawn from U(lower, upper); the mask output holds it.
            slope = g.stop_gradient(g.RandomUniformLike(data, low=self.lower_bound, high=self.upper_bound), dtype)
            return g.Sub(g.Relu(data), g.Mul(slope, g.Relu(g.Neg(data)))), slope
        elif kind == "rrelu":
            out = g.LeakyRelu(data, alpha=float(self._mean_slope()))
        elif kind == "prelu":
            slope = g.Reshape(gamma, g.int64s(_prelu_gamma_shape(g.shape(gamma), g.shape(data))))
            # x where x > 0, else gamma * x: MXNet's backward (gamma's gradient where x <= 0), and a Where has
            # float64 gradient kernels (ReluGrad has not)
            out = g.Where(g.Greater(data, g.scalar(0, dtype)), data, g.Mul(slope, data))
        elif kind == "elu":
            out = _elu(g, data, np.float32(self.slope))     # (a float parameter: float64 data sees float32(slope))
        elif kind == "selu":
            out = g.Mul(g.scalar(_SELU_LAMBDA, dtype), _elu(g, data, _SELU_ALPHA))
        else:
            half, root = g.scalar(0.5, dtype), g.scalar(1.0 / math.sqrt(2.0), dtype)
            scaled = g.Mul(data, root)
            g.set_info(scaled, g.shape(data), dtype)
            out = g.Mul(g.Mul(half, data), g.Add(g.scalar(1, dtype), erf(g, scaled)))
        if kind != "rrelu":
            return out
        # The mask holds the slope used per element; at inference that is the mean slope everywhere.
        mask = g.Expand(g.scalar(self._mean_slope(), dtype), g.Shape(data))
        return out, mask

    def _mean_slope(self):
        """rrelu's slope at inference, (lower_bound + upper_bound) / 2 in float32 as MXNet computes it."""
        return (np.float32(self.lower_bound) + np.float32(self.upper_bound)) / np.float32(2)
