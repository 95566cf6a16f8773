"""onnxsym: Apache MXNet 1.x's symbolic API on ONNX and ONNX Runtime.

    import onnxsym as mx
    data = mx.sym.Variable('data')
    net = mx.sym.FullyConnected(data, num_hidden=128, name='fc1')
"""
import sys

from . import _checkout  # noqa: F401  (first: in a source checkout it makes onnxsym.converters/.models resolve)
from . import autograd, base, context, contrib, engine, gluon, ops, util
from . import custom as operator
from . import module as mod
from .module import callback, io, lr_scheduler, metric, model, optimizer
from .module import initializer
from . import random
from . import viz
from . import monitor
from . import recordio
from . import image
from . import onnx
from . import test_utils
from . import kvstore
from . import ndarray
from . import symbol
from ._namespaces import populate as _populate
from .base import MXNetError, __version__
from .context import Context, cpu, cpu_pinned, current_context, gpu, num_gpus
from .runtime.executor import Executor
from . import name
from .name import AttrScope
from .util import is_np_array, is_np_shape, np_array, np_shape, set_np_shape, use_np, use_np_array, use_np_shape

_populate(symbol, ndarray)
contrib.sym = contrib.symbol = symbol.contrib       # MXNet's mx.contrib.sym / mx.contrib.nd
contrib.nd = contrib.ndarray = ndarray.contrib
io.ImageRecordIter = image.ImageRecordIter     # MXNet's C++ iterator; its module imports mx.io's DataIter
from . import rnn  # noqa: E402  (after _populate: its cells' defaults are mx.sym.zeros, mx.sym.LeakyReLU)

sym = symbol
nd = ndarray
init = initializer
attribute = name
kv = kvstore
opt = optimizer
rnd = random
visualization = viz
mon = monitor
img = image

__all__ = ["sym", "symbol", "nd", "ndarray", "operator", "mod", "io", "metric", "init", "initializer", "optimizer",
           "lr_scheduler", "callback", "model", "random", "viz", "onnx", "cpu", "gpu", "cpu_pinned", "Context", "current_context",
           "num_gpus", "name", "AttrScope", "MXNetError", "Executor", "base", "__version__", "kv", "kvstore", "opt",
           "rnd", "visualization", "test_utils", "autograd", "contrib", "recordio", "image", "img", "rnn", "monitor", "mon"]

# MXNet's mx.test_utils imports mxnet as `mx`, and its tests use that name through `from mxnet.test_utils import *`
test_utils.mx = sys.modules[__name__]
