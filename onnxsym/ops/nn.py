"""Dense layers and activations: FullyConnected, Activation, LeakyReLU."""
import math

from ..base import MXNetError
from .params import param
from .registry import OpDef, register


def _prod(dims):
    return int(math.prod(dims))


@register
class FullyConnected(OpDef):
    """Y = flatten(data) @ weight.T + bias. Mirrors MXNet src/operator/nn/fully_connected.cc."""
    num_hidden: int = param(min=1, doc="Number of hidden nodes of the output.")
    no_bias: bool = param(False, doc="Whether to disable the bias parameter.")
    flatten: bool = param(True, doc="Whether to collapse all but the first axis of the input data tensor.")

    def input_names(self):
        return ("data", "weight") if self.no_bias else ("data", "weight", "bias")

    def infer_shape(self, data, weight=None, bias=None):
        if data is None:
            if weight is None:
                return None
            return None
        k = _prod(data[1:]) if self.flatten else data[-1]
        out = (data[0], self.num_hidden) if self.flatten else (*data[:-1], self.num_hidden)
        inputs = [data, (self.num_hidden, k), (self.num_hidden,)]
        return inputs[: len(self.input_names())], [out]

    def lower(self, g, data, weight, bias=None):
        if self.flatten:
            x = data if len(g.shape(data)) == 2 else g.Flatten(data, axis=1)
            return g.Gemm(x, weight, bias, transB=1)
        y = g.MatMul(data, g.Transpose(weight, perm=[1, 0]))
        return y if bias is None else g.Add(y, bias)


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
    act_type: str = param(choices=tuple(_ACTIVATIONS), doc="Activation function to be applied.")

    def lower(self, g, data):
        return _ACTIVATIONS[self.act_type](g, data)
