"""Optimizer update operators: sgd_update, adam_update, ... as MXNet 1.9.1 computes them
(src/operator/optimizer_op-inl.h, optimizer_op.cc).

Each op returns the new weight and writes its state inputs (momentum, moments, float32 master weights) in place, as
MXNet's FMutateInputs do: those inputs are the op's auxiliary states, so `mx.sym.<op>` lists them with
list_auxiliary_states, and `mx.nd.<op>(weight, grad, mom, out=weight)` updates `weight` and `mom`. The lowering
reports their new values with `g.update_aux`; the imperative runtime and the Executor write them back.

Why lowered to ONNX and not shared with onnxsym.module.optimizer: an op must lower (it runs in any graph, exports,
runs on a device), while the Optimizer classes update numpy buffers in place on the host, several times cheaper
than an ORT session per parameter per step; both are checked against MXNet's recorded numbers, not each other.

The formulas follow the C++ kernels term by term, in the weight's dtype with the float parameters cast to it
(float16 runs in float32: ORT has few float16 CPU kernels), and the mp_* / multi_mp_* forms in float32 on the
master copy `weight32`. `lazy_update` only matters for sparse gradients, which onnxsym has not; it is accepted.
"""
import dataclasses
import functools
import typing

import numpy as np

from .._shapes import elementwise, fmt, partial_rule, same_shape_rule
from ..base import MXNetError
from .params import float_param, param
from .registry import OpDef, register

__all__ = []

_F32 = np.dtype(np.float32)
_CLIP_DOC = ("Clip gradient to the range of [-clip_gradient, clip_gradient] If clip_gradient <= 0, gradient "
             "clipping is turned off. grad = max(min(grad, clip_gradient), -clip_gradient).")
_WD_DOC = "Weight decay augments the objective function with a regularization term that penalizes large weights."
_LAZY_DOC = "If true, lazy updates are applied if gradient's stype is row_sparse (dense here: no effect)."


class _E:
    """An ONNX value in arithmetic written like MXNet's kernels (`momentum * mom - lr * grad`); numbers are
    numpy scalars of the value's dtype."""
    __slots__ = ("g", "v", "dtype")
    __array_ufunc__ = None      # numpy scalars on the left defer to the reflected operators below

    def __init__(self, g, v, dtype):
        self.g, self.v, self.dtype = g, v, np.dtype(dtype)

    def _lift(self, other):
        return other.v if isinstance(other, _E) else self.g.scalar(other, self.dtype)

    def _op(self, op_type, a, b):
        return self.new(getattr(self.g, op_type)(a, b))

    def new(self, value):
        """Another value of this dtype."""
        return _E(self.g, value, self.dtype)

    def __add__(self, o):
        return self._op("Add", self.v, self._lift(o))

    def __radd__(self, o):
        return self._op("Add", self._lift(o), self.v)

    def __sub__(self, o):
        return self._op("Sub", self.v, self._lift(o))

    def __rsub__(self, o):
        return self._op("Sub", self._lift(o), self.v)

    def __mul__(self, o):
        return self._op("Mul", self.v, self._lift(o))

    def __rmul__(self, o):
        return self._op("Mul", self._lift(o), self.v)

    def __truediv__(self, o):
        return self._op("Div", self.v, self._lift(o))

    def __rtruediv__(self, o):
        return self._op("Div", self._lift(o), self.v)

    def __neg__(self):
        return self.new(self.g.Neg(self.v))

    def apply(self, op_type):
        return self.new(getattr(self.g, op_type)(self.v))


def _sqrt(x):
    return x.apply("Sqrt")


def _sign(x):
    return x.apply("Sign")


def _clip(x, bound):
    """mshadow_op::clip: into [-bound, bound]."""
    return x.new(x.g.Clip(x.v, x._lift(-bound), x._lift(bound)))


def _gt(x, bound):
    """mshadow_op::gt: 1 where x > bound, else 0."""
    return x.new(x.g.cast(x.g.Greater(x.v, x._lift(bound)), x.dtype))


def _floats(text, name):
    """MXNet's Tuple<float> attribute ('(0.1, 0.2)', '[0.1]', '0.1') as a tuple of floats."""
    text = str(text).strip()
    if text[:1] in "([" and text[-1:] in ")]":
        text = text[1:-1]
    try:
        return tuple(float(item) for item in text.split(",") if item.strip())
    except ValueError:
        raise ValueError("%s must be a tuple of floats, got %r" % (name, text)) from None


@dataclasses.dataclass(frozen=True)
class _Update(OpDef):
    """Base of the update ops: `kernel(v, p)` gets the inputs as _E values (by input name, in the computing
    dtype) and `p` (a float parameter -> a numpy scalar of the kernel's dtype, through float32 as MXNet's float
    fields); it returns the output(s) and {state input: new value}."""
    differentiable = False       # MXNet registers no FGradient for them
    float_only = True            # MSHADOW_REAL_TYPE_SWITCH
    mixed: typing.ClassVar[bool] = False     # mp_*: computes in float32 on the master weight

    def master_names(self):
        """Inputs MXNet keeps in float32 whatever the weight's dtype (mp_*: momentum and weight32)."""
        return ()

    infer_shape = same_shape_rule

    def infer_type(self, *types):
        names, masters = self.input_names(), set(self.master_names())
        main = None
        for name, dtype in zip(names, types):
            if dtype is None:
                continue
            dtype = np.dtype(dtype)
            if name in masters:
                if dtype != _F32:
                    raise MXNetError("%s: input '%s' must be float32 (the float32 master copy and state), got %s"
                                     % (self.op_name, name, dtype.name))
            elif main is None:
                main = dtype
            elif dtype != main:
                raise MXNetError("%s: input '%s' has dtype %s but the weight and gradient inputs must all have "
                                 "dtype %s" % (self.op_name, name, dtype.name, main.name))
        if main is None:
            return None
        return [_F32 if n in masters else main for n in names], [main] * self.count_outputs()

    def lower(self, g, *inputs):
        names = self.input_names()
        dtype = g.dtype(inputs[0])
        calc = _F32 if (self.mixed or dtype == np.float16) else np.dtype(dtype)
        values = {n: _E(g, v if g.dtype(v) == calc else g.cast(v, calc), calc) for n, v in zip(names, inputs)}
        # scalars as the kernel has them: float parameters cast to the dtype (float16 too: scalar arithmetic such
        # as 1 - beta2**t rounds there), lifted to the computing dtype when they meet a tensor
        scalar = _F32 if self.mixed else np.dtype(dtype)
        outs, states = self.kernel(values, functools.partial(float_param, dtype=scalar))
        for name, new in states.items():
            old = inputs[names.index(name)]
            g.update_aux(old, new.v if g.dtype(old) == calc else g.cast(new.v, g.dtype(old)))
        outs = outs if isinstance(outs, tuple) else (outs,)
        results = tuple(o.v if dtype == calc else g.cast(o.v, dtype) for o in outs)
        return results if len(results) > 1 else results[0]

    def kernel(self, v, p):
        raise NotImplementedError


# ----------------------------------------------------------------------------- SGD family
@register
class sgd_update(_Update):
    """weight = (1 - lr*wd)*weight - lr*clip(rescale_grad*grad). Mirrors MXNet's SGDKernel."""
    inputs = ("weight", "grad")
    lr: float = param(doc="Learning rate")
    wd: float = param(0.0, doc=_WD_DOC)
    rescale_grad: float = param(1.0, doc="Rescale gradient to grad = rescale_grad*grad.")
    clip_gradient: float = param(-1.0, doc=_CLIP_DOC)
    lazy_update: bool = param(True, doc=_LAZY_DOC)

    def kernel(self, v, p):
        lr, wd, rescale = p(self.lr), p(self.wd), p(self.rescale_grad)
        w, grad = v["weight"], v["grad"]
        if self.clip_gradient >= 0:
            return (1 - lr * wd) * w - lr * _clip(rescale * grad, p(self.clip_gradient)), {}
        return (1 - lr * wd) * w - (lr * rescale) * grad, {}


@register
class sgd_mom_update(_Update):
    """mom = momentum*mom - lr*wd*weight - lr*clip(rescale_grad*grad); weight += mom. Mirrors SGDMomKernel."""
    inputs = ("weight", "grad", "mom")
    aux = ("mom",)
    lr: float = param(doc="Learning rate")
    momentum: float = param(0.0, doc="The decay rate of momentum estimates at each epoch.")
    wd: float = param(0.0, doc=_WD_DOC)
    rescale_grad: float = param(1.0, doc="Rescale gradient to grad = rescale_grad*grad.")
    clip_gradient: float = param(-1.0, doc=_CLIP_DOC)
    lazy_update: bool = param(True, doc=_LAZY_DOC)

    def kernel(self, v, p):
        w = v["weight32"] if self.mixed else v["weight"]
        mom = _momentum_step(self, p, v["mom"], w, v["grad"], p(self.lr), p(self.wd))
        new = w + mom
        return new, ({"mom": mom, "weight32": new} if self.mixed else {"mom": mom})


def _momentum_step(op, p, mom, w, grad, lr, wd):
    """MXNet's SGD momentum term: momentum*mom - lr*wd*w - lr*clip(rescale*grad) (mom None: multi_sgd's 0)."""
    start = p(op.momentum) * mom if mom is not None else None
    decay = (lr * wd) * w
    if op.clip_gradient >= 0:
        step = lr * _clip(p(op.rescale_grad) * grad, p(op.clip_gradient))
    else:
        step = (lr * p(op.rescale_grad)) * grad
    return (-decay if start is None else start - decay) - step


@register
class mp_sgd_update(_Update):
    """sgd_update on the float32 master copy weight32 (updated in place); the output is its cast to the weight's
    dtype. Mirrors MP_SGDKernel."""
    inputs = ("weight", "grad", "weight32")
    aux = ("weight32",)
    mixed = True
    lr: float = param(doc="Learning rate")
    wd: float = param(0.0, doc=_WD_DOC)
    rescale_grad: float = param(1.0, doc="Rescale gradient to grad = rescale_grad*grad.")
    clip_gradient: float = param(-1.0, doc=_CLIP_DOC)
    lazy_update: bool = param(True, doc=_LAZY_DOC)

    def master_names(self):
        return ("weight32",)

    def kernel(self, v, p):
        new, _ = sgd_update.kernel(self, {"weight": v["weight32"], "grad": v["grad"]}, p)
        return new, {"weight32": new}


@register
class mp_sgd_mom_update(sgd_mom_update):
    """sgd_mom_update on the float32 master copy weight32, float32 momentum (both updated in place). Mirrors
    MP_SGDMomKernel."""
    inputs = ("weight", "grad", "mom", "weight32")
    aux = ("mom", "weight32")
    mixed = True

    def master_names(self):
        return ("mom", "weight32")


@register
class nag_mom_update(_Update):
    """Nesterov momentum: m = momentum*mom; out = weight - m + (momentum+1)*(m - lr*(clip(rescale*grad) +
    wd*weight)); mom = m - lr*(clip(rescale*grad) + wd*weight). Mirrors NAGMomKernel, which writes the output
    before it updates mom: with `out=weight` (the optimizer's call) mom's decay term reads the new weight
    (the in-place variant, `in_place_variant`), otherwise the old one."""
    inputs = ("weight", "grad", "mom")
    aux = ("mom",)
    lr: float = param(doc="Learning rate")
    momentum: float = param(0.0, doc="The decay rate of momentum estimates at each epoch.")
    wd: float = param(0.0, doc=_WD_DOC)
    rescale_grad: float = param(1.0, doc="Rescale gradient to grad = rescale_grad*grad.")
    clip_gradient: float = param(-1.0, doc=_CLIP_DOC)
    reads_new_weight: typing.ClassVar[bool] = False

    def kernel(self, v, p):
        w = v["weight32"] if self.mixed else v["weight"]
        lr, wd, momentum = p(self.lr), p(self.wd), p(self.momentum)
        grad = p(self.rescale_grad) * v["grad"]
        if self.clip_gradient >= 0:
            grad = _clip(grad, p(self.clip_gradient))
        m = momentum * v["mom"]
        new = w - m + (momentum + 1) * (m - lr * (grad + wd * w))
        decayed = new if (self.mixed or self.reads_new_weight) else w
        mom = m - lr * (grad + wd * decayed)
        return new, ({"mom": mom, "weight32": new} if self.mixed else {"mom": mom})


@dataclasses.dataclass(frozen=True)
class _NagMomInPlace(nag_mom_update):
    """nag_mom_update run with out=weight: the output overwrites the weight before mom reads it."""
    reads_new_weight = True


nag_mom_update.in_place_variant = _NagMomInPlace


@register
class mp_nag_mom_update(nag_mom_update):
    """nag_mom_update on the float32 master copy weight32 and float32 momentum; mom's decay term reads the new
    master weight (MP_NAGMomKernel updates it first)."""
    inputs = ("weight", "grad", "mom", "weight32")
    aux = ("mom", "weight32")
    mixed = True
    in_place_variant = None

    def master_names(self):
        return ("mom", "weight32")


@register
class signsgd_update(_Update):
    """weight = (1 - lr*wd)*weight - lr*sign(grad) (rescale_grad and clip_gradient unused, as in MXNet's
    SignSGDKernel)."""
    inputs = ("weight", "grad")
    lr: float = param(doc="Learning rate")
    wd: float = param(0.0, doc=_WD_DOC)
    rescale_grad: float = param(1.0, doc="Rescale gradient to grad = rescale_grad*grad.")
    clip_gradient: float = param(-1.0, doc=_CLIP_DOC)

    def kernel(self, v, p):
        lr, wd = p(self.lr), p(self.wd)
        return (1 - lr * wd) * v["weight"] - lr * _sign(v["grad"]), {}


@register
class signum_update(_Update):
    """mom = momentum*mom - (1-momentum)*wd*weight - (1-momentum)*clip(rescale*grad);
    weight = (1 - lr*wd_lh)*weight + lr*sign(mom). Mirrors SignumKernel."""
    inputs = ("weight", "grad", "mom")
    aux = ("mom",)
    lr: float = param(doc="Learning rate")
    momentum: float = param(0.0, doc="The decay rate of momentum estimates at each epoch.")
    wd: float = param(0.0, doc=_WD_DOC)
    rescale_grad: float = param(1.0, doc="Rescale gradient to grad = rescale_grad*grad.")
    clip_gradient: float = param(-1.0, doc=_CLIP_DOC)
    wd_lh: float = param(0.0, doc="The amount of weight decay that does not go into gradient/momentum "
                                  "calculations otherwise do weight decay algorithmically only.")

    def kernel(self, v, p):
        lr, wd, momentum, rescale = p(self.lr), p(self.wd), p(self.momentum), p(self.rescale_grad)
        w, grad = v["weight"], v["grad"]
        keep = 1 - momentum
        if self.clip_gradient >= 0:
            mom = momentum * v["mom"] - keep * wd * w - keep * _clip(rescale * grad, p(self.clip_gradient))
        else:
            mom = momentum * v["mom"] - keep * wd * w - keep * rescale * grad
        return (1 - lr * p(self.wd_lh)) * w + lr * _sign(mom), {"mom": mom}


# ----------------------------------------------------------------------------- adaptive methods
def _decayed_grad(op, p, v, clip_field="clip_gradient"):
    """clip(rescale_grad*grad + wd*weight) (Adam, RMSProp, FTML)."""
    grad = v["grad"] * p(op.rescale_grad) + v["weight"] * p(op.wd)
    bound = getattr(op, clip_field)
    return _clip(grad, p(bound)) if bound >= 0 else grad


@register
@dataclasses.dataclass(frozen=True, kw_only=True)     # (MXNet's field order: a required field after defaults)
class ftml_update(_Update):
    """FTML (Zheng & Kwok 2017): v, d, z updated; weight = -z / d_t. Mirrors FTMLKernel."""
    inputs = ("weight", "grad", "d", "v", "z")
    aux = ("d", "v", "z")
    lr: float = param(doc="Learning rate.")
    beta1: float = param(0.6, min=0.0, max=1.0, doc="Generally close to 0.5.")
    beta2: float = param(0.999, min=0.0, max=1.0, doc="Generally close to 1.")
    epsilon: float = param(1e-8, doc="Epsilon to prevent div 0.")
    t: int = param(doc="Number of update.")
    wd: float = param(0.0, doc=_WD_DOC)
    rescale_grad: float = param(1.0, doc="Rescale gradient to grad = rescale_grad*grad.")
    clip_grad: float = param(-1.0, doc=_CLIP_DOC)

    def kernel(self, v, p):
        w = v["weight"]
        dtype = type(p(0))
        grad = _clip(p(self.rescale_grad) * v["grad"] + p(self.wd) * w, p(self.clip_grad)) \
            if self.clip_grad >= 0 else p(self.rescale_grad) * v["grad"] + p(self.wd) * w
        beta1, beta2, t = p(self.beta1), p(self.beta2), dtype(self.t)
        var = beta2 * v["v"] + (1 - beta2) * (grad * grad)
        d_t = ((1 - beta1 ** t) / p(self.lr)) * (_sqrt(var / (1 - beta2 ** t)) + dtype(self.epsilon))
        z = beta1 * v["z"] + (1 - beta1) * grad - (d_t - beta1 * v["d"]) * w
        return -z / d_t, {"d": d_t, "v": var, "z": z}


@register
class adam_update(_Update):
    """mean, var moving averages of clip(rescale*grad + wd*weight) and its square; weight -= lr*mean /
    (sqrt(var) + epsilon) (no bias correction: the optimizer folds it into lr). Mirrors AdamUpdateKernel."""
    inputs = ("weight", "grad", "mean", "var")
    aux = ("mean", "var")
    lr: float = param(doc="Learning rate")
    beta1: float = param(0.9, doc="The decay rate for the 1st moment estimates.")
    beta2: float = param(0.999, doc="The decay rate for the 2nd moment estimates.")
    epsilon: float = param(1e-8, doc="A small constant for numerical stability.")
    wd: float = param(0.0, doc=_WD_DOC)
    rescale_grad: float = param(1.0, doc="Rescale gradient to grad = rescale_grad*grad.")
    clip_gradient: float = param(-1.0, doc=_CLIP_DOC)
    lazy_update: bool = param(True, doc=_LAZY_DOC)

    def kernel(self, v, p):
        grad = _decayed_grad(self, p, v)
        beta1, beta2 = p(self.beta1), p(self.beta2)
        mean = beta1 * v["mean"] + (1 - beta1) * grad
        var = beta2 * v["var"] + (1 - beta2) * grad * grad
        return v["weight"] - p(self.lr) * mean / (_sqrt(var) + p(self.epsilon)), {"mean": mean, "var": var}


@register
class rmsprop_update(_Update):
    """n = (1-gamma1)*grad^2 + gamma1*n; weight -= lr*grad/sqrt(n + epsilon), then clipped to clip_weights.
    Mirrors RMSPropUpdateKernel (grad = clip(rescale*grad + wd*weight))."""
    inputs = ("weight", "grad", "n")
    aux = ("n",)
    lr: float = param(doc="Learning rate")
    gamma1: float = param(0.95, doc="The decay rate of the mean square of gradients.")
    epsilon: float = param(1e-8, doc="A small constant for numerical stability.")
    wd: float = param(0.0, doc=_WD_DOC)
    rescale_grad: float = param(1.0, doc="Rescale gradient to grad = rescale_grad*grad.")
    clip_gradient: float = param(-1.0, doc=_CLIP_DOC)
    clip_weights: float = param(-1.0, doc="Clip weights to the range of [-clip_weights, clip_weights]; off when "
                                          "clip_weights <= 0.")

    def kernel(self, v, p):
        grad = _decayed_grad(self, p, v)
        gamma1 = p(self.gamma1)
        n = (1 - gamma1) * (grad * grad) + gamma1 * v["n"]
        weight = v["weight"] - p(self.lr) * (grad / _sqrt(n + p(self.epsilon)))
        if self.clip_weights >= 0:
            weight = _clip(weight, p(self.clip_weights))
        return weight, {"n": n}


@register
class rmspropalex_update(_Update):
    """Centered RMSProp (Graves 2013): n, g, delta updated; weight += delta, clipped to clip_weights.
    Mirrors RMSPropAlexUpdateKernel."""
    inputs = ("weight", "grad", "n", "g", "delta")
    aux = ("n", "g", "delta")
    lr: float = param(doc="Learning rate")
    gamma1: float = param(0.95, doc="Decay rate.")
    gamma2: float = param(0.9, doc="Decay rate.")
    epsilon: float = param(1e-8, doc="A small constant for numerical stability.")
    wd: float = param(0.0, doc=_WD_DOC)
    rescale_grad: float = param(1.0, doc="Rescale gradient to grad = rescale_grad*grad.")
    clip_gradient: float = param(-1.0, doc=_CLIP_DOC)
    clip_weights: float = param(-1.0, doc="Clip weights to the range of [-clip_weights, clip_weights]; off when "
                                          "clip_weights <= 0.")

    def kernel(self, v, p):
        grad = _decayed_grad(self, p, v)
        gamma1, gamma2 = p(self.gamma1), p(self.gamma2)
        n = (1 - gamma1) * grad * grad + gamma1 * v["n"]
        mean = (1 - gamma1) * grad + gamma1 * v["g"]
        delta = gamma2 * v["delta"] - (p(self.lr) * grad / _sqrt(n - mean * mean + p(self.epsilon)))
        weight = v["weight"] + delta
        if self.clip_weights >= 0:
            weight = _clip(weight, p(self.clip_weights))
        return weight, {"n": n, "g": mean, "delta": delta}


@register
class ftrl_update(_Update):
    """FTRL-proximal: z += grad - (sqrt(n + grad^2) - sqrt(n))*weight/lr; n += grad^2;
    weight = (sign(z)*lamda1 - z) / ((beta + sqrt(n))/lr + wd) * (|z| > lamda1). Mirrors FtrlUpdateKernel."""
    inputs = ("weight", "grad", "z", "n")
    aux = ("z", "n")
    lr: float = param(doc="Learning rate")
    lamda1: float = param(0.01, doc="The L1 regularization coefficient.")
    beta: float = param(1.0, doc="Per-Coordinate Learning Rate beta.")
    wd: float = param(0.0, doc=_WD_DOC)
    rescale_grad: float = param(1.0, doc="Rescale gradient to grad = rescale_grad*grad.")
    clip_gradient: float = param(-1.0, doc=_CLIP_DOC)

    def kernel(self, v, p):
        grad = v["grad"] * p(self.rescale_grad)
        if self.clip_gradient >= 0:
            grad = _clip(grad, p(self.clip_gradient))
        lr, n, square = p(self.lr), v["n"], grad * grad
        z = v["z"] + (grad - (_sqrt(n + square) - _sqrt(n)) * v["weight"] / lr)
        n = n + square
        lamda1 = p(self.lamda1)
        weight = (_sign(z) * lamda1 - z) / ((p(self.beta) + _sqrt(n)) / lr + p(self.wd)) * \
            _gt(z.apply("Abs"), lamda1)
        return weight, {"z": z, "n": n}


@register
@dataclasses.dataclass(frozen=True, kw_only=True)     # (MXNet's field order: a required field after defaults)
class lamb_update_phase1(_Update):
    """LAMB's first phase: mean, var moving averages of clip(rescale*grad); the output is the update direction
    g = mean_hat / (sqrt(var_hat) + epsilon) + wd*weight (bias-corrected when bias_correction).
    Mirrors LambUpdatePhaseOneKernel."""
    inputs = ("weight", "grad", "mean", "var")
    aux = ("mean", "var")
    beta1: float = param(0.9, doc="The decay rate for the 1st moment estimates.")
    beta2: float = param(0.999, doc="The decay rate for the 2nd moment estimates.")
    epsilon: float = param(1e-6, doc="A small constant for numerical stability.")
    t: int = param(doc="Index update count.")
    bias_correction: bool = param(True, doc="Whether to use bias correction.")
    wd: float = param(doc=_WD_DOC)
    rescale_grad: float = param(1.0, doc="Rescale gradient to grad = rescale_grad*grad.")
    clip_gradient: float = param(-1.0, doc=_CLIP_DOC)

    def kernel(self, v, p):
        dtype = type(p(0))
        grad = v["grad"] * p(self.rescale_grad)
        if self.clip_gradient >= 0:
            grad = _clip(grad, p(self.clip_gradient))
        beta1, beta2 = p(self.beta1), p(self.beta2)
        mean = beta1 * v["mean"] + (1 - beta1) * grad
        var = beta2 * v["var"] + (1 - beta2) * grad * grad
        decay = p(self.wd) * v["weight"]
        if self.bias_correction:
            # beta^t: std::pow(float, int) in double, cast to the dtype; 1 - beta^t in double
            beta1_t = dtype(np.float64(np.float32(self.beta1)) ** self.t)
            beta2_t = dtype(np.float64(np.float32(self.beta2)) ** self.t)
            mean_hat = mean / dtype(1.0 - np.float64(beta1_t))
            var_hat = var / dtype(1.0 - np.float64(beta2_t))
            return mean_hat / (_sqrt(var_hat) + p(self.epsilon)) + decay, {"mean": mean, "var": var}
        return mean / (_sqrt(var) + p(self.epsilon)) + decay, {"mean": mean, "var": var}


@register
class lamb_update_phase2(_Update):
    """LAMB's second phase: weight -= lr * r1/r2 * g, with r1 = ||weight|| clamped to [lower_bound, upper_bound]
    (each when >= 0) and the ratio 1 when r1 or r2 is 0. Mirrors LambUpdatePhaseTwoKernel."""
    inputs = ("weight", "g", "r1", "r2")
    lr: float = param(doc="Learning rate")
    lower_bound: float = param(-1.0, doc="Lower limit of norm of weight. If lower_bound <= 0, Lower limit is not "
                                         "set")
    upper_bound: float = param(-1.0, doc="Upper limit of norm of weight. If upper_bound <= 0, Upper limit is not "
                                         "set")

    @partial_rule
    def infer_shape(self, weight, g, r1, r2, out_shapes=None):
        for name, shape in (("r1", r1), ("r2", r2)):
            if shape is not None and (len(shape) == 0 or shape[0] not in (None, 1)):
                raise MXNetError("lamb_update_phase2: %s shape incorrect: %s (its first dimension must be 1)"
                                 % (name, fmt(shape)))
        rule = elementwise(self, (weight, g), out_shapes)
        scalar = (1,)
        if rule is None:
            return [weight, g, r1 or scalar, r2 or scalar], list(out_shapes or [None])
        (shape, _), outs = rule
        return [shape, shape, r1 or scalar, r2 or scalar], outs

    def kernel(self, v, p):
        b = v["weight"].g

        def first(x):       # r1[0], r2[0]
            return x.new(b.Slice(b.Reshape(x.v, b.int64s([-1])), b.int64s([0]), b.int64s([1])))

        r1, r2 = first(v["r1"]), first(v["r2"])
        if self.lower_bound >= 0:
            r1 = r1.new(b.Max(r1.v, r1._lift(p(self.lower_bound))))
        if self.upper_bound >= 0:
            r1 = r1.new(b.Min(r1.v, r1._lift(p(self.upper_bound))))
        lr = p(self.lr)
        zero = r1._lift(p(0))
        either = b.Or(b.Equal(r1.v, zero), b.Equal(r2.v, zero))
        rate = r1.new(b.Where(either, r1._lift(lr), (lr * r1 / r2).v))
        return v["weight"] - rate * v["g"], {}


# ----------------------------------------------------------------------------- multi-tensor SGD
@dataclasses.dataclass(frozen=True)
class _MultiSGD(_Update):
    """num_weights groups of inputs (weight_i, grad_i[, mom_i][, weight32_i]) and one output per weight:
    mom = momentum*mom - lrs[i]*wds[i]*w - lrs[i]*clip(rescale*grad); w += mom. Mirrors MultiSGDKernel."""
    has_momentum: typing.ClassVar[bool] = False
    lrs: str = param(doc="Learning rates.")
    wds: str = param(doc=_WD_DOC)
    rescale_grad: float = param(1.0, doc="Rescale gradient to grad = rescale_grad*grad.")
    clip_gradient: float = param(-1.0, doc=_CLIP_DOC)
    num_weights: int = param(1, min=1, max=60, doc="Number of updated weights (MXNet's kernel takes at most 60).")

    def __post_init__(self):
        for name in ("lrs", "wds"):
            values = _floats(getattr(self, name), name)
            if len(values) != self.num_weights:
                raise ValueError("Number of %s is inconsistent with num_weights parameter passed. Expected number "
                                 "of %s: %d, and got %d" % ({"lrs": "learning rates", "wds": "weight decays"}[name],
                                                            {"lrs": "learning rates", "wds": "weight decays"}[name],
                                                            self.num_weights, len(values)))

    def group(self):
        return ("weight", "grad") + (("mom",) if self.has_momentum else ()) + (("weight32",) if self.mixed else ())

    def input_names(self):
        return tuple("%s_%d" % (n, i) for i in range(self.num_weights) for n in self.group())

    def aux_names(self):
        mutated = (("mom",) if self.has_momentum else ()) + (("weight32",) if self.mixed else ())
        return tuple("%s_%d" % (n, i) for i in range(self.num_weights) for n in mutated)

    def master_names(self):
        return self.aux_names() if self.mixed else ()

    def output_names(self):
        return ("output",) if self.num_weights == 1 else tuple("output%d" % i for i in range(self.num_weights))

    @partial_rule
    def infer_shape(self, *shapes, out_shapes=None):
        size, outs = len(self.group()), list(out_shapes or [None] * self.num_weights)
        ins, known = list(shapes), False
        for i in range(self.num_weights):
            names = self.input_names()[i * size:(i + 1) * size]
            group = _Group(self.op_name, names)
            rule = elementwise(group, shapes[i * size:(i + 1) * size], [outs[i]])
            if rule is not None:
                known = True
                ins[i * size:(i + 1) * size], (outs[i],) = rule
        return (ins, outs) if known else None

    def infer_type(self, *types):
        if self.mixed:
            return _Update.infer_type(self, *types)
        known = [np.dtype(t) for t in types if t is not None]
        for name, dtype in zip(self.input_names(), types):
            if dtype is not None and np.dtype(dtype) != known[0]:
                raise MXNetError("%s: input '%s' has dtype %s but every input must have dtype %s"
                                 % (self.op_name, name, np.dtype(dtype).name, known[0].name))
        return ([known[0]] * len(types), [known[0]] * self.num_weights) if known else None

    def lower(self, g, *inputs):
        size, outs = len(self.group()), []
        lrs, wds = _floats(self.lrs, "lrs"), _floats(self.wds, "wds")
        # (with float32 weights the mp kernels read and write the weight itself and leave weight32 alone: MXNet
        # chooses the master-copy path only when the weight's dtype is not float32)
        master = self.mixed and g.dtype(inputs[0]) != _F32
        for i in range(self.num_weights):
            one = _MultiOne(self, lrs[i], wds[i], master)
            outs.append(one.lower(g, *inputs[i * size:(i + 1) * size]))
        return tuple(outs) if len(outs) > 1 else outs[0]


class _Group:
    """One weight's inputs of a multi_* op, for the elementwise shape rule's messages."""

    def __init__(self, op_name, names):
        self.op_name, self._names = op_name, names

    def input_names(self):
        return self._names

    def count_outputs(self):
        return 1


@dataclasses.dataclass(frozen=True)
class _MultiOne(_Update):
    """One weight of a multi_* op: lowered through _Update.lower with that weight's lr and wd."""
    parent: object = None
    lr: float = 0.0
    wd: float = 0.0
    master: bool = False        # reads and writes weight32

    def input_names(self):
        return self.parent.group()

    def aux_names(self):
        return tuple(n for n in self.parent.group() if n in ("mom", "weight32"))

    @property
    def mixed(self):
        return self.parent.mixed

    def kernel(self, v, p):
        parent = self.parent
        w = v["weight32"] if self.master else v["weight"]
        mom = _momentum_step(parent, p, v["mom"] if parent.has_momentum else None, w, v["grad"], p(self.lr),
                             p(self.wd))
        new = w + mom
        states = {}
        if parent.has_momentum:
            states["mom"] = mom
        if self.master:
            states["weight32"] = new
        return new, states


@register
class multi_sgd_update(_MultiSGD):
    """sgd_update of num_weights weights at once (inputs weight_0, grad_0, weight_1, grad_1, ...)."""


@register
class multi_sgd_mom_update(_MultiSGD):
    """sgd_mom_update of num_weights weights at once (inputs weight_i, grad_i, mom_i; each mom_i updated)."""
    has_momentum = True
    momentum: float = param(0.0, doc="The decay rate of momentum estimates at each epoch.")


@register
class multi_mp_sgd_update(_MultiSGD):
    """mp_sgd_update of num_weights weights at once (inputs weight_i, grad_i, weight32_i)."""
    mixed = True


@register
class multi_mp_sgd_mom_update(_MultiSGD):
    """mp_sgd_mom_update of num_weights weights at once (inputs weight_i, grad_i, mom_i, weight32_i)."""
    has_momentum = True
    mixed = True
    momentum: float = param(0.0, doc="The decay rate of momentum estimates at each epoch.")
