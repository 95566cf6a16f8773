"""`mx.init` / `mx.initializer`: weight initializers (MXNet 1.9.1 python/mxnet/initializer.py).

    init = mx.init.Xavier(factor_type="in", magnitude=2.34)
    init(mx.init.InitDesc("fc1_weight"), arr)      # fills `arr` (an NDArray) in place
    init.dumps()        # '["xavier", {"rnd_type": "uniform", "factor_type": "in", "magnitude": 2.34}]'

Random initializers draw from one numpy generator owned by this module. `seed(seed_state)` reseeds it; the
later `mx.random.seed` calls it, so `mx.random.seed(n)` makes initialization reproducible. MXNet seeds its own
generator with 0 at start-up, so unseeded runs repeat there; this generator starts from seed 0 as well. The
values differ from MXNet's (a different generator); distributions, bounds and scales are MXNet's.
"""
import json
import logging
import re
import warnings
from math import sqrt

import numpy as np

from .. import ndarray as nd
from ..base import integer_types, string_types
from ..runtime.ndarray import NDArray

__all__ = ["InitDesc", "Initializer", "register", "alias", "create", "Load", "Mixed", "Zero", "One", "Constant",
           "Uniform", "Normal", "Orthogonal", "Xavier", "MSRAPrelu", "Bilinear", "LSTMBias", "FusedRNN"]

_generator = np.random.default_rng(0)


def seed(seed_state):
    """Reseed the generator of the random initializers (called by `mx.random.seed`)."""
    global _generator
    if not isinstance(seed_state, integer_types) or isinstance(seed_state, bool):
        raise ValueError("seed_state must be int, got %r" % (seed_state,))
    _generator = np.random.default_rng(int(seed_state))


def _check(condition, message):
    """MXNet validates these with `assert`; raise the same AssertionError even under `python -O`."""
    if not condition:
        raise AssertionError(message)


class InitDesc(str):
    """A parameter name (a str) carrying its variable attributes and the global initializer to fall back to.

    Parameters
    ----------
    name : str
        Name of variable.
    attrs : dict of str to str
        Attributes of this variable taken from ``Symbol.attr_dict``; ``__init__`` selects its initializer.
    global_init : Initializer
        Global initializer to fall back to.
    """

    def __new__(cls, name, attrs=None, global_init=None):
        ret = super().__new__(cls, name)
        ret.attrs = attrs or {}
        ret.global_init = global_init
        return ret


def _mean_norm(arr):
    """MXNet's default verbose statistic: ||x||_2 / sqrt(size), in float32."""
    data = arr.asnumpy().astype(np.float32)
    return str(np.float32(np.linalg.norm(data.ravel())) / np.float32(sqrt(data.size)))


def _bilinear_weight(shape):
    """The bilinear-interpolation kernel MXNet's UpSampling uses, over the last two axes of a 4-D shape."""
    if len(shape) < 4:
        raise ValueError("Bilinear initializer needs a 4-D weight (C, 1, k, k), got shape %s" % (shape,))
    f = np.ceil(shape[3] / 2.0)
    c = (2 * f - 1 - f % 2) / (2.0 * f)
    # MXNet walks the flat index with x = i % shape[3], y = (i // shape[3]) % shape[2]; so do we.
    i = np.arange(int(np.prod(shape)))
    x, y = i % shape[3], (i // shape[3]) % shape[2]
    return ((1 - np.abs(x / f - c)) * (1 - np.abs(y / f - c))).astype(np.float32).reshape(shape)


class Initializer:
    """The base class of an initializer: dispatches on the parameter name to ``_init_weight``, ``_init_bias``..."""

    def __init__(self, **kwargs):
        self._kwargs = kwargs
        self._verbose = False
        self._print_func = None

    def set_verbosity(self, verbose=False, print_func=None):
        """Switch verbose mode on/off; `print_func(arr) -> str` defaults to ||arr|| / sqrt(arr.size)."""
        self._verbose = verbose
        self._print_func = _mean_norm if print_func is None else print_func
        return self

    def _verbose_print(self, desc, init, arr):
        if self._verbose and self._print_func:
            logging.info("Initialized %s as %s: %s", desc, init, self._print_func(arr))

    def dumps(self):
        """The initializer as a JSON string, e.g. ``'["normal", {"sigma": 0.5}]'`` (what ``__init__`` holds).

        >>> mx.init.Normal(0.5).dumps()
        '["normal", {"sigma": 0.5}]'
        """
        return json.dumps([self.__class__.__name__.lower(), self._kwargs])

    def __call__(self, desc, arr):
        """Initialize `arr` (an NDArray) in place; `desc` is an InitDesc (a plain str is the deprecated path)."""
        if not isinstance(desc, InitDesc):
            self._legacy_init(desc, arr)
            return
        if desc.global_init is None:
            desc.global_init = self
        init = desc.attrs.get("__init__", "")
        if init:
            create(init)._init_weight(desc, arr)
            self._verbose_print(desc, init, arr)
            return
        # MXNet's order of suffix tests; new patterns come through the `__init__` attribute instead.
        for suffix, method in (("weight", self._init_weight), ("bias", self._init_bias),
                               ("gamma", self._init_gamma), ("beta", self._init_beta),
                               ("min", self._init_zero), ("max", self._init_one),
                               ("weight_quantize", self._init_quantized_weight),
                               ("bias_quantize", self._init_quantized_bias)):
            if desc.endswith(suffix):
                method(desc, arr)
                self._verbose_print(desc, suffix, arr)
                return
        self._init_default(desc, arr)

    def _legacy_init(self, name, arr):
        """Name-pattern initialization of MXNet < 1.0, used when `name` is a plain str."""
        warnings.warn("Calling initializer with init(str, NDArray) has been deprecated. "
                      "please use init(mx.init.InitDesc(...), NDArray) instead.", DeprecationWarning, stacklevel=3)
        if not isinstance(name, string_types):
            raise TypeError("name must be string")
        if not isinstance(arr, NDArray):
            raise TypeError("arr must be NDArray")
        if name.startswith("upsampling"):
            self._init_bilinear(name, arr)
        elif name.startswith("stn_loc") and name.endswith("weight"):
            self._init_zero(name, arr)
        elif name.startswith("stn_loc") and name.endswith("bias"):
            self._init_loc_bias(name, arr)
        else:
            for suffix, method in (("bias", self._init_bias), ("gamma", self._init_gamma),
                                   ("beta", self._init_beta), ("weight", self._init_weight),
                                   ("moving_mean", self._init_zero), ("moving_var", self._init_one),
                                   ("moving_inv_var", self._init_zero), ("moving_avg", self._init_zero),
                                   ("min", self._init_zero), ("max", self._init_one)):
                if name.endswith(suffix):
                    method(name, arr)
                    return
            self._init_default(name, arr)

    def _init_bilinear(self, _, arr):
        arr[:] = _bilinear_weight(arr.shape)

    def _init_loc_bias(self, _, arr):
        _check(arr.shape[0] == 6, "stn_loc bias must have 6 elements, got shape %s" % (arr.shape,))
        arr[:] = np.array([1.0, 0, 0, 0, 1.0, 0])

    def _init_zero(self, _, arr):
        arr[:] = 0.0

    def _init_one(self, _, arr):
        arr[:] = 1.0

    def _init_bias(self, _, arr):
        arr[:] = 0.0

    def _init_quantized_bias(self, _, arr):
        arr[:] = 0

    def _init_gamma(self, _, arr):
        arr[:] = 1.0

    def _init_beta(self, _, arr):
        arr[:] = 0.0

    def _init_weight(self, name, arr):
        raise NotImplementedError("Must override it")

    def _init_quantized_weight(self, _, arr):
        # MXNet draws one shapeless randint in [-127, 127) and broadcasts it over the whole array.
        arr[:] = np.int8(_generator.integers(-127, 127))

    def _init_default(self, name, _):
        hint = ""
        if name.endswith("label"):      # Module(..., label_names=None) on a symbol with a loss head
            hint = (" (%s looks like a label: a Module takes labels from the iterator when created with "
                    "label_names=['%s'])" % (name, name))
        raise ValueError('Unknown initialization pattern for %s. Default initialization is now limited to '
                         '"weight", "bias", "gamma" (1.0), and "beta" (0.0). Please use '
                         'mx.sym.Variable(init=mx.init.*) to set initialization pattern%s' % (name, hint))

    def __eq__(self, other):
        if not isinstance(other, Initializer):
            return NotImplemented
        return type(self) is type(other) and self._kwargs == other._kwargs

    __hash__ = None  # as in MXNet: __eq__ compares the arguments, so instances are not hashable


_REGISTRY = {}


def _register(klass, name=None):
    """Register `klass` under `name` (default: its lower-cased class name); a clash warns and overrides."""
    if not (isinstance(klass, type) and issubclass(klass, Initializer)):
        raise AssertionError("Can only register subclass of Initializer, got %r" % (klass,))
    name = (klass.__name__ if name is None else name).lower()
    if name in _REGISTRY:
        warnings.warn("New initializer %s.%s registered with name %s is overriding existing initializer %s.%s"
                      % (klass.__module__, klass.__name__, name, _REGISTRY[name].__module__,
                         _REGISTRY[name].__name__), UserWarning, stacklevel=3)
    _REGISTRY[name] = klass
    return klass


def register(klass):
    """Register a custom Initializer subclass so that `create` and `init_params` find it by class name.

    >>> @mx.init.register
    ... @mx.init.alias('myinit')
    ... class CustomInit(mx.init.Initializer):
    ...     def _init_weight(self, _, arr):
    ...         arr[:] = 0.1
    """
    return _register(klass)


def alias(*aliases):
    """Class decorator registering extra (case-insensitive) names for an Initializer subclass."""
    def reg(klass):
        for name in aliases:
            _register(klass, name)
        return klass
    return reg


def create(*args, **kwargs):
    """An Initializer from an instance, a registered name (+ constructor arguments), a dict or a JSON string.

    >>> mx.init.create('xavier', magnitude=2)
    >>> mx.init.create('["constant", {"value": 0.25}]')
    """
    if args:
        name, args = args[0], args[1:]
    elif "initializer" in kwargs:
        name = kwargs.pop("initializer")
    else:
        raise TypeError("create() needs an initializer name, instance or config")
    if isinstance(name, Initializer):
        _check(not args and not kwargs, "initializer is already an instance. Additional arguments are invalid")
        return name
    if isinstance(name, dict):
        return create(**name)
    _check(isinstance(name, string_types), "initializer must be of string type, got %r" % (name,))
    if name.startswith("["):
        _check(not args and not kwargs, "a JSON initializer config takes no extra arguments")
        name, kwargs = json.loads(name)
        return create(name, **kwargs)
    if name.startswith("{"):
        _check(not args and not kwargs, "a JSON initializer config takes no extra arguments")
        return create(**json.loads(name))
    name = name.lower()
    _check(name in _REGISTRY, "%s is not registered. Please register with initializer.register first "
                              "(registered: %s)" % (name, ", ".join(sorted(_REGISTRY))))
    return _REGISTRY[name](*args, **kwargs)


class Load:
    """Initialize parameters from a dict name -> NDArray or a file saved by `mx.nd.save`.

    ``arg:``/``aux:`` prefixes are dropped from the loaded names; names not found go to `default_init`.

    Parameters
    ----------
    param : str or dict of str to NDArray
        Parameter file or dict mapping name to NDArray.
    default_init : Initializer
        Initializer for names not found in `param`.
    verbose : bool
        Log the source of each initialization.
    """

    def __init__(self, param, default_init=None, verbose=False):
        if isinstance(param, str):
            param = nd.load(param)
        _check(isinstance(param, dict), "Load needs a dict of name -> NDArray, got %s" % type(param).__name__)
        self.param = {(name[4:] if name.startswith(("arg:", "aux:")) else name): arr for name, arr in param.items()}
        self.default_init = default_init
        self.verbose = verbose

    def __call__(self, name, arr):
        if name in self.param:
            _check(arr.shape == self.param[name].shape,
                   "Parameter %s cannot be initialized from loading. Shape mismatch, target %s vs loaded %s"
                   % (name, arr.shape, self.param[name].shape))
            arr[:] = self.param[name]
            if self.verbose:
                logging.info("Initialized %s by loading", name)
        else:
            _check(self.default_init is not None, "Cannot Initialize %s. Not found in loaded param and no default "
                                                  "Initializer is provided." % name)
            self.default_init(name, arr)
            if self.verbose:
                logging.info("Initialized %s by default", name)


class Mixed:
    """Initialize each parameter with the initializer of the first regex (`re.match`) matching its name.

    >>> init = mx.init.Mixed(['bias', '.*'], [mx.init.Zero(), mx.init.Uniform(0.1)])
    """

    def __init__(self, patterns, initializers):
        _check(len(patterns) == len(initializers), "Mixed needs one initializer per pattern, got %d patterns and "
                                                   "%d initializers" % (len(patterns), len(initializers)))
        self.map = list(zip([re.compile(p) for p in patterns], initializers))

    def __call__(self, name, arr):
        for prog, init in self.map:
            if prog.match(name):
                init(name, arr)
                return
        raise ValueError('Parameter name %s did not match any pattern. Consider add a ".*" pattern at the end '
                         'with default Initializer.' % name)


@register
@alias("zeros")
class Zero(Initializer):
    """Initializes weights to zero."""

    def __init__(self):
        super().__init__()

    def _init_weight(self, _, arr):
        arr[:] = 0


@register
@alias("ones")
class One(Initializer):
    """Initializes weights to one."""

    def __init__(self):
        super().__init__()

    def _init_weight(self, _, arr):
        arr[:] = 1


@register
class Constant(Initializer):
    """Initializes weights to `value`: a scalar or an NDArray/array of the parameter's shape."""

    def __init__(self, value):
        super().__init__(value=value)
        self.value = value

    def _init_weight(self, _, arr):
        arr[:] = self.value

    def dumps(self):
        value = self._kwargs["value"]
        if isinstance(value, np.ndarray):
            self._kwargs["value"] = value.tolist()
        elif isinstance(value, NDArray):
            self._kwargs["value"] = value.asnumpy().tolist()
        return json.dumps([self.__class__.__name__.lower(), self._kwargs])


@register
class Uniform(Initializer):
    """Initializes weights uniformly in [-scale, scale] (default scale 0.07)."""

    def __init__(self, scale=0.07):
        super().__init__(scale=scale)
        self.scale = scale

    def _init_weight(self, _, arr):
        arr[:] = _generator.uniform(-self.scale, self.scale, arr.shape)


@register
class Normal(Initializer):
    """Initializes weights from N(0, sigma^2) (default sigma 0.01)."""

    def __init__(self, sigma=0.01):
        super().__init__(sigma=sigma)
        self.sigma = sigma

    def _init_weight(self, _, arr):
        arr[:] = _generator.normal(0, self.sigma, arr.shape)


@register
class Orthogonal(Initializer):
    """Initializes weights as `scale` times an orthogonal matrix (Saxe et al., arXiv:1312.6120).

    The (shape[0], prod(shape[1:])) view has orthonormal rows when shape[0] <= prod(shape[1:]), orthonormal
    columns otherwise. `rand_type` ('uniform' or 'normal') is the law of the matrix that is orthogonalized.
    """

    def __init__(self, scale=1.414, rand_type="uniform"):
        super().__init__(scale=scale, rand_type=rand_type)
        self.scale = scale
        self.rand_type = rand_type

    def _init_weight(self, _, arr):
        nout, nin = arr.shape[0], int(np.prod(arr.shape[1:]))
        if self.rand_type == "uniform":
            tmp = _generator.uniform(-1.0, 1.0, (nout, nin))
        elif self.rand_type == "normal":
            tmp = _generator.normal(0.0, 1.0, (nout, nin))
        else:
            raise ValueError("Unknown random type %r for Orthogonal (use 'uniform' or 'normal')" % self.rand_type)
        u, _, v = np.linalg.svd(tmp.astype(np.float32), full_matrices=False)
        arr[:] = self.scale * (u if u.shape == tmp.shape else v).reshape(arr.shape)


@register
class Xavier(Initializer):
    """The "Xavier" initialization: uniform in [-c, c] or N(0, c^2) with c = sqrt(magnitude / factor).

    factor is (fan_in + fan_out) / 2 ('avg'), fan_in ('in') or fan_out ('out'), where fan_in = shape[1] * hw,
    fan_out = shape[0] * hw and hw = prod(shape[2:]) (the kernel size of a convolution weight).

    Parameters
    ----------
    rnd_type : str, optional
        Random generator type, 'gaussian' or 'uniform'.
    factor_type : str, optional
        'avg', 'in', or 'out'.
    magnitude : float, optional
        Scale of random number.
    """

    def __init__(self, rnd_type="uniform", factor_type="avg", magnitude=3):
        super().__init__(rnd_type=rnd_type, factor_type=factor_type, magnitude=magnitude)
        self.rnd_type = rnd_type
        self.factor_type = factor_type
        self.magnitude = float(magnitude)

    def _scale(self, name, shape):
        """c = sqrt(magnitude / factor) for a weight of this shape."""
        if len(shape) < 2:
            raise ValueError("Xavier initializer cannot be applied to vector {0}. It requires at least 2D."
                             .format(name))
        hw_scale = float(np.prod(shape[2:])) if len(shape) > 2 else 1.0
        fan_in, fan_out = shape[1] * hw_scale, shape[0] * hw_scale
        factors = {"avg": (fan_in + fan_out) / 2.0, "in": fan_in, "out": fan_out}
        if self.factor_type not in factors:
            raise ValueError("Incorrect factor type %r (use 'avg', 'in' or 'out')" % (self.factor_type,))
        return np.sqrt(self.magnitude / factors[self.factor_type])

    def _init_weight(self, name, arr):
        scale = self._scale(name, arr.shape)
        if self.rnd_type == "uniform":
            arr[:] = _generator.uniform(-scale, scale, arr.shape)
        elif self.rnd_type == "gaussian":
            arr[:] = _generator.normal(0, scale, arr.shape)
        else:
            raise ValueError("Unknown random type %r (use 'uniform' or 'gaussian')" % (self.rnd_type,))


@register
class MSRAPrelu(Xavier):
    """He et al. (arXiv:1502.01852) initialization: gaussian Xavier with magnitude 2 / (1 + slope^2)."""

    def __init__(self, factor_type="avg", slope=0.25):
        super().__init__("gaussian", factor_type, 2.0 / (1 + slope ** 2))
        self._kwargs = {"factor_type": factor_type, "slope": slope}


@register
class Bilinear(Initializer):
    """Initialize the (C, 1, k, k) weight of a bilinear UpSampling (a grouped deconvolution)."""

    def __init__(self):
        super().__init__()

    def _init_weight(self, _, arr):
        arr[:] = _bilinear_weight(arr.shape)


@register
class LSTMBias(Initializer):
    """Initialize an LSTM cell's 4*H biases to 0, except the forget gate (the second quarter) to `forget_bias`."""

    def __init__(self, forget_bias=1.0):
        super().__init__(forget_bias=forget_bias)
        self.forget_bias = forget_bias

    def _init_weight(self, name, arr):
        arr[:] = 0.0
        num_hidden = int(arr.shape[0] / 4)
        arr[num_hidden:2 * num_hidden] = self.forget_bias


_RNN_GATES = {"rnn_relu": [""], "rnn_tanh": [""], "lstm": ["_i", "_f", "_c", "_o"], "gru": ["_r", "_z", "_o"]}


def _fused_rnn_layout(size, num_hidden, num_layers, mode, bidirectional):
    """(name, offset, shape) of each piece of MXNet's packed RNN parameter vector (FusedRNNCell's layout)."""
    if mode not in _RNN_GATES:
        raise ValueError("Unknown RNN mode %r (use one of %s)" % (mode, ", ".join(sorted(_RNN_GATES))))
    gates, directions, h = _RNN_GATES[mode], ["l", "r"] if bidirectional else ["l"], num_hidden
    b = len(directions)
    num_input = size // b // h // len(gates) - (num_layers - 1) * (h + b * h + 2) - h - 2
    pieces, offset = [], 0
    for kind in ("weight", "bias"):  # every weight of every layer first, then every bias
        for layer in range(num_layers):
            for direction in directions:
                for conn in ("i2h", "h2h"):
                    for gate in gates:
                        if kind == "bias":
                            shape = (h,)
                        elif conn == "h2h":
                            shape = (h, h)
                        else:
                            shape = (h, b * h) if layer > 0 else (h, num_input)
                        pieces.append(("%s%d_%s%s_%s" % (direction, layer, conn, gate, kind), offset, shape))
                        offset += int(np.prod(shape))
    _check(num_input > 0 and offset == size, "Invalid parameters size %d for FusedRNNCell(num_hidden=%d, "
                                             "num_layers=%d, mode=%s, bidirectional=%s)"
           % (size, num_hidden, num_layers, mode, bidirectional))
    return pieces


@register
class FusedRNN(Initializer):
    """Initialize the packed parameter vector of a fused RNN layer piece by piece.

    Weights use `init` (or the global initializer when None), biases are zero, and an LSTM's forget-gate
    biases (i2h and h2h) are `forget_bias`.

    Parameters
    ----------
    init : Initializer or str (its JSON) or None
    num_hidden, num_layers, mode, bidirectional, forget_bias
        As passed to FusedRNNCell / the RNN op.
    """

    def __init__(self, init, num_hidden, num_layers, mode, bidirectional=False, forget_bias=1.0):
        if isinstance(init, string_types):
            init = create(init)
        super().__init__(init=init.dumps() if init is not None else None, num_hidden=num_hidden,
                         num_layers=num_layers, mode=mode, bidirectional=bidirectional, forget_bias=forget_bias)
        self._init = init
        self._num_hidden = num_hidden
        self._num_layers = num_layers
        self._mode = mode
        self._bidirectional = bidirectional
        self._forget_bias = forget_bias

    def _init_weight(self, desc, arr):
        global_init = getattr(desc, "global_init", None)
        if self._init is None and global_init is None:
            raise ValueError("FusedRNN(init=None) needs an InitDesc with a global_init for %s" % desc)
        layout = _fused_rnn_layout(arr.size, self._num_hidden, self._num_layers, self._mode, self._bidirectional)
        flat = arr.asnumpy().reshape(-1)
        for name, offset, shape in layout:
            piece = NDArray(flat[offset:offset + int(np.prod(shape))].reshape(shape))  # a view into `flat`
            if self._mode == "lstm" and name.endswith("_f_bias"):
                piece[:] = self._forget_bias
            else:
                (self._init or global_init)(InitDesc(name, global_init=global_init), piece)
        arr[:] = flat.reshape(arr.shape)
