"""Random sampling ops (MXNet src/operator/random/): `_random_<dist>` (parameters as attributes, a `shape`),
`_random_<dist>_like` (the shape of `data`), `_sample_<dist>` (parameters as arrays: one distribution per element,
`shape` samples of each), `_sample_multinomial` and `_shuffle`.

Every draw is an ONNX graph: ONNX Runtime's RandomUniform / RandomNormal / Multinomial nodes give the noise and
ordinary ONNX ops transform it (gamma: Marsaglia-Tsang rejection, Poisson: inversion below a rate of 10 and
Hoermann's PTRS rejection above, negative binomials as gamma-Poisson mixtures), so an exported graph samples in
plain ONNX Runtime too. Rejection samplers and the Poisson search are ONNX Loops that run until every element
has its value (a round accepts more than 85% of the candidates). The noise nodes carry
no seed: each session gets seeds from `mx.random.seed`'s stream when it is created (runtime/rng.py).

None of these ops is differentiable (MXNet: zero gradients), except the log-probability output of
`_sample_multinomial(get_prob=True)`, whose gradient is MXNet's (head / p at each sampled class).
"""
import dataclasses
import math
import typing

import numpy as np
from onnx import TensorProto, helper

from .._shapes import fmt
from ..base import MXNetError, MXNetForwardError
from ..lower.builder import GraphBuilder, onnx_dtype
from .creation import CTX_DOC
from .elemwise import _lgamma
from .params import Dtype, Shape, param
from .registry import OpDef, register

__all__ = []

_MAX_ROUNDS = 1000              # rejection rounds / inversion steps at most (a round accepts > 85%)
_SMALL_RATE = 10.0              # Poisson: inversion below this rate, PTRS from it
_FLOATS = ("float16", "float32", "float64")
_DTYPE_DOC = ("DType of the output in case this can't be inferred. Defaults to float32 if not defined "
              "(dtype=None).")


# ------------------------------------------------------------------------------------------------ noise and math
def _compute_dtype(dtype):
    """Samplers compute in float64 for float64 outputs, float32 otherwise (ORT has no float16 random kernels)."""
    return np.dtype(np.float64) if np.dtype(dtype) == np.float64 else np.dtype(np.float32)


def _uniform(g, shape, dtype):
    return g.RandomUniform(shape=list(shape), dtype=onnx_dtype(dtype), low=0.0, high=1.0)


def _normal(g, shape, dtype):
    return g.RandomNormal(shape=list(shape), dtype=onnx_dtype(dtype), mean=0.0, scale=1.0)


def _c(g, value, dtype):
    return g.scalar(value, dtype)


def _log_factorial(g, k, dtype):
    """log(k!) of non-negative integer-valued k: a table below 10, Stirling's series (error < 1e-12) above."""
    table = np.array([math.lgamma(i + 1.0) for i in range(10)], dtype)
    small = g.Gather(g.const(table), g.Cast(g.Clip(k, _c(g, 0, dtype), _c(g, 9, dtype)), to=onnx_dtype(np.int64)))
    x = g.Add(g.Max(k, _c(g, 9, dtype)), _c(g, 1, dtype))
    inv = g.Reciprocal(x)
    inv2 = g.Mul(inv, inv)
    series = g.Mul(inv, g.Sub(_c(g, 1 / 12, dtype), g.Mul(inv2, g.Sub(_c(g, 1 / 360, dtype),
                                                                        g.Mul(inv2, _c(g, 1 / 1260, dtype))))))
    large = g.Add(g.Sub(g.Mul(g.Sub(x, _c(g, 0.5, dtype)), g.Log(x)), x),
                  g.Add(_c(g, 0.5 * math.log(2 * math.pi), dtype), series))
    return g.Where(g.Less(k, _c(g, 10, dtype)), small, large)


def _loop(g, state, step, max_trips):
    """An ONNX Loop run while `step` says so (at most `max_trips` rounds). `state`: [(value, shape, dtype)];
    `step(body, names)` builds one round in the sub-builder `body` (reading the state values `names` and any outer
    value) and returns (go on: a bool scalar, new state values). Returns the final state values."""
    body = GraphBuilder()
    body.scope = g.fresh("%s/loop" % g.scope)
    body.add_input(body.scope + "/i", [], np.int64)
    body.add_input(body.scope + "/cond", [], np.bool_)
    names = [body.add_input("%s/state%d" % (body.scope, i), list(shape), dtype)
             for i, (_, shape, dtype) in enumerate(state)]
    go, new = step(body, names)
    outs = [body.Identity(go)] + [body.Identity(v) for v in new]
    nodes = [helper.make_node("Constant", [], [t.name], value=t) for t in body.initializers] + body.nodes
    infos = [helper.make_tensor_value_info(outs[0], TensorProto.BOOL, [])] + [
        helper.make_tensor_value_info(o, onnx_dtype(dtype), list(shape))
        for o, (_, shape, dtype) in zip(outs[1:], state)]
    graph = helper.make_graph(nodes, body.scope, body.inputs, infos)
    results = g.Loop(g.const(np.array(max_trips, np.int64)), g.const(np.array(True)), *[v for v, _, _ in state],
                     body=graph, _outputs=len(state))
    results = results if isinstance(results, tuple) else (results,)
    for value, (_, shape, dtype) in zip(results, state):
        g.value_infos.append(helper.make_tensor_value_info(value, onnx_dtype(dtype), list(shape)))
        g.set_info(value, tuple(shape), dtype)
    return results


def _until_done(g, shape, state, active, step):
    """Round after round, only on the elements still `active` (bool of `shape`), until none is: `state` is
    [(value of `shape`, dtype)]; `step(body, sub, values)` gets the active elements' state `values` (1-D) and
    `sub(v)`, which picks the active elements of an outer value of `shape`, and returns (their new values, which
    of them stay active). Each round works on the elements left, so a rejection sampler costs about one pass over
    the array. Returns the final state values."""
    def round_(b, names):
        flags, values = names[0], names[1:]
        left = b.Transpose(b.NonZero(flags))            # (elements left, rank)
        sub = lambda value: b.GatherND(value, left)     # noqa: E731
        new, still = step(b, sub, [sub(v) for v in values])
        flags = b.ScatterND(flags, left, still)
        return _any(b, flags), [flags] + [b.ScatterND(v, left, n) for v, n in zip(values, new)]

    full = [(active, shape, np.bool_)] + [(value, shape, dtype) for value, dtype in state]
    return _loop(g, full, round_, _MAX_ROUNDS)[1:]


def _any(g, flags):
    """Whether any of the bool `flags` is true (a bool scalar)."""
    return g.Greater(g.ReduceMax(g.Cast(flags, to=onnx_dtype(np.int32)), keepdims=0), _c(g, 0, np.int32))


def _zeros(g, shape, dtype):
    return g.ConstantOfShape(g.int64s(shape), value=np.zeros(1, dtype))


def _rejection(g, shape, dtype, propose, active=None):
    """Rejection sampling: every element still `active` (all when None) draws a candidate from
    `propose(body, sub) -> (candidate, accepted)` until one is accepted (the others stay 0)."""
    if active is None:
        active = g.ConstantOfShape(g.int64s(shape), value=np.array([True]))

    def step(b, sub, values):
        candidate, accepted = propose(b, sub)
        return [b.Where(accepted, candidate, values[0])], b.Not(accepted)

    return _until_done(g, shape, [(_zeros(g, shape, dtype), dtype)], active, step)[0]


def _gamma(g, alpha, beta, shape, dtype):
    """Gamma(shape alpha, scale beta): Marsaglia and Tsang's method on alpha (+1 below 1, then times U^(1/alpha))."""
    one = _c(g, 1, dtype)
    alpha = g.Expand(alpha, g.int64s(shape))
    boosted = g.Where(g.Less(alpha, one), g.Add(alpha, one), alpha)
    d = g.Sub(boosted, _c(g, 1 / 3, dtype))
    c = g.Reciprocal(g.Sqrt(g.Mul(d, _c(g, 9, dtype))))

    def propose(b, sub):
        d_, c_ = sub(d), sub(c)
        x = b.RandomNormalLike(d_)
        v = b.Add(_c(b, 1, dtype), b.Mul(c_, x))
        v = b.Mul(b.Mul(v, v), v)
        log_v = b.Log(b.Max(v, _c(b, np.finfo(dtype).tiny, dtype)))
        bound = b.Add(b.Mul(_c(b, 0.5, dtype), b.Mul(x, x)), b.Mul(d_, b.Add(b.Sub(_c(b, 1, dtype), v), log_v)))
        accepted = b.And(b.Greater(v, _c(b, 0, dtype)), b.Less(b.Log(b.RandomUniformLike(d_)), bound))
        return b.Mul(d_, v), accepted

    value = _rejection(g, shape, dtype, propose)
    boost = g.Pow(_uniform(g, shape, dtype), g.Reciprocal(alpha))
    value = g.Where(g.Less(alpha, one), g.Mul(value, boost), value)
    return g.Mul(value, beta)


def _poisson(g, rate, shape, rate_dtype):
    """Poisson(rate) in float64: inversion of the cumulative distribution below a rate of 10 (a sequential search,
    each element leaving it when it has its count), Hoermann's PTRS rejection from 10 on."""
    dtype = np.dtype(np.float64)
    rate = g.Expand(_as(g, rate, rate_dtype, dtype), g.int64s(shape))
    small = g.Less(rate, _c(g, _SMALL_RATE, dtype))
    # inversion: X = #{k : P(X <= k) < U}
    target = _uniform(g, shape, dtype)
    first = g.Exp(g.Neg(rate))

    def search(b, sub, values):
        # the active elements have P(X <= count) < U: count them one more, move on to P(X <= count + 1)
        count, pmf, cdf = values
        count = b.Add(count, _c(b, 1, dtype))
        pmf = b.Div(b.Mul(pmf, sub(rate)), count)
        cdf = b.Add(cdf, pmf)
        return [count, pmf, cdf], b.Less(cdf, sub(target))

    inverted = _until_done(g, shape, [(_zeros(g, shape, dtype), dtype), (first, dtype), (first, dtype)],
                           g.And(small, g.Less(first, target)), search)[0]
    # PTRS (Hoermann 1993), on the elements with a rate of at least 10
    lam = g.Max(rate, _c(g, _SMALL_RATE, dtype))
    b_ = g.Add(_c(g, 0.931, dtype), g.Mul(_c(g, 2.53, dtype), g.Sqrt(lam)))
    a = g.Add(_c(g, -0.059, dtype), g.Mul(_c(g, 0.02483, dtype), b_))
    log_inv_alpha = g.Log(g.Add(_c(g, 1.1239, dtype), g.Div(_c(g, 1.1328, dtype), g.Sub(b_, _c(g, 3.4, dtype)))))
    v_r = g.Sub(_c(g, 0.9277, dtype), g.Div(_c(g, 3.6224, dtype), g.Sub(b_, _c(g, 2, dtype))))
    log_lam = g.Log(lam)

    def propose(b, sub):
        lam_, a_, bb = sub(lam), sub(a), sub(b_)
        u = b.Sub(b.RandomUniformLike(lam_), _c(b, 0.5, dtype))
        v = b.RandomUniformLike(lam_)
        us = b.Sub(_c(b, 0.5, dtype), b.Abs(u))
        us_safe = b.Max(us, _c(b, 1e-12, dtype))
        k = b.Floor(b.Add(b.Mul(b.Add(b.Div(b.Mul(_c(b, 2, dtype), a_), us_safe), bb), u),
                          b.Add(lam_, _c(b, 0.43, dtype))))
        fast = b.And(b.GreaterOrEqual(us, _c(b, 0.07, dtype)), b.LessOrEqual(v, sub(v_r)))
        rejected = b.Or(b.Less(k, _c(b, 0, dtype)), b.And(b.Less(us, _c(b, 0.013, dtype)), b.Greater(v, us)))
        k = b.Max(k, _c(b, 0, dtype))
        lhs = b.Sub(b.Add(b.Log(b.Max(v, _c(b, np.finfo(dtype).tiny, dtype))), sub(log_inv_alpha)),
                    b.Log(b.Add(b.Div(a_, b.Mul(us_safe, us_safe)), bb)))
        rhs = b.Sub(b.Sub(b.Mul(k, sub(log_lam)), lam_), _log_factorial(b, k, dtype))
        return k, b.Or(fast, b.And(b.Not(rejected), b.LessOrEqual(lhs, rhs)))

    rejection = _rejection(g, shape, dtype, propose, active=g.Not(small))
    return g.Where(small, inverted, rejection)


def _sample(g, dist, params, shape, dtype):
    """A value of `shape` (compute dtype `dtype`) drawn from `dist` with `params` (values broadcastable to it)."""
    if dist == "uniform":
        low, high = params
        return g.Add(low, g.Mul(g.Sub(high, low), _uniform(g, shape, dtype)))
    if dist == "normal":
        loc, scale = params
        return g.Add(loc, g.Mul(scale, _normal(g, shape, dtype)))
    if dist == "exponential":
        (lam,) = params
        return g.Div(g.Neg(g.Log(g.Sub(_c(g, 1, dtype), _uniform(g, shape, dtype)))), lam)
    if dist == "gamma":
        alpha, beta = params
        return _gamma(g, alpha, beta, shape, dtype)
    if dist == "poisson":
        (lam,) = params
        return _as(g, _poisson(g, lam, shape, dtype), np.float64, dtype)
    if dist == "negative_binomial":
        k, p = params
        rate = _gamma(g, k, g.Div(g.Sub(_c(g, 1, dtype), p), p), shape, dtype)
        return _as(g, _poisson(g, rate, shape, dtype), np.float64, dtype)
    if dist == "generalized_negative_binomial":
        mu, alpha = params
        zero = g.Equal(alpha, _c(g, 0, dtype))
        safe = g.Where(zero, _c(g, 1, dtype), alpha)
        rate = _gamma(g, g.Reciprocal(safe), g.Mul(safe, mu), shape, dtype)
        return _as(g, _poisson(g, g.Where(zero, g.Expand(mu, g.int64s(shape)), rate), shape, dtype), np.float64,
                   dtype)
    raise MXNetError("unknown distribution %s" % dist)


def _as(g, value, have, want):
    """`value` (of dtype `have`) in dtype `want`."""
    return value if np.dtype(have) == np.dtype(want) else g.cast(value, want)


# MXNet's checks of the scalar parameters of `_random_<dist>` (run when the op runs, as MXNet's Forward checks them)
_PARAM_RULES = {
    "uniform": [(lambda p: p["high"] >= p["low"], "low must be less or equal to high in uniform distribution")],
    "normal": [(lambda p: p["scale"] > 0, "scale parameter in gaussian has to be positive")],
    "gamma": [(lambda p: p["alpha"] > 0, "alpha parameter in gamma distribution has to be positive"),
              (lambda p: p["beta"] > 0, "beta parameter in gamma distribution has to be positive")],
    "exponential": [(lambda p: p["lam"] > 0, "lambda parameter in exponential distribution has to be positive")],
    "poisson": [(lambda p: p["lam"] >= 0, "lambda parameter in poisson distribution has to be non-negative")],
    "negative_binomial": [
        (lambda p: p["k"] >= 0, "k parameter in negative binomial distribution has to be non-negative"),
        (lambda p: p["p"] >= 0, "p parameter in negative binomial distribution has to be non-negative")],
    "generalized_negative_binomial": [
        (lambda p: p["mu"] >= 0, "mu parameter in generalized negative binomial distribution has to be non-negative"),
        (lambda p: p["alpha"] >= 0,
         "alpha parameter in generalized negative binomial distribution has to be non-negative")],
}


def _scalar_params(g, op, dtype):
    """The scalar parameters of a `_random_<dist>[_like]` op as constants of `dtype`, after MXNet's checks."""
    values = {name: getattr(op, name) for name in op._params}
    for holds, message in _PARAM_RULES[op._dist]:
        if not holds(values):
            raise MXNetForwardError("%s: %s (%s)" % (op.op_name, message,
                                               ", ".join("%s=%g" % item for item in values.items())))
    return [_c(g, values[name], dtype) for name in op._params]


# ------------------------------------------------------------------------------------------------ the ops
class _RandomOp(OpDef):
    """`_random_<dist>`: scalar parameters (attributes `_params`), output of `shape`."""
    inputs = ()
    differentiable = False
    samples = True
    _dist = ""
    _params = ()

    def infer_shape(self):
        if not self.shape:
            return None          # MXNet's legacy shapes: () is unknown
        return [], [tuple(self.shape)]

    def out_dtype(self):
        return np.dtype(self.dtype or "float32")

    def infer_type(self):
        return [], [self.out_dtype()]

    def lower(self, g):
        dtype = self.out_dtype()
        compute = _compute_dtype(dtype)
        params = _scalar_params(g, self, compute)
        return _as(g, _sample(g, self._dist, params, tuple(self.shape), compute), compute, dtype)


class _RandomLike(OpDef):
    """`_random_<dist>_like`: scalar parameters, the shape and dtype of `data`."""
    inputs = ("data",)
    differentiable = False
    samples = True
    _dist = ""
    _params = ()

    def infer_shape(self, data):
        if data is None:
            return None
        return [data], [data]

    def infer_type(self, data):
        if data is None:
            return None
        if np.dtype(data).kind != "f":
            raise MXNetError("%s: data must be a floating point array, got %s" % (self.op_name, np.dtype(data)))
        return [data], [data]

    def lower(self, g, data):
        dtype = np.dtype(g.dtype(data))
        compute = _compute_dtype(dtype)
        params = _scalar_params(g, self, compute)
        return _as(g, _sample(g, self._dist, params, tuple(g.shape(data)), compute), compute, dtype)


class _SampleOp(OpDef):
    """`_sample_<dist>`: parameters as arrays of one shape P; output P + shape (`shape` draws of each)."""
    differentiable = False
    samples = True
    _dist = ""

    def input_names(self):
        return self.inputs

    def infer_shape(self, *params):
        known = [p for p in params if p is not None]
        if not known:
            return None
        first = tuple(known[0])
        for name, shape in zip(self.inputs, params):
            if shape is not None and tuple(shape) != first:
                raise MXNetError("%s: parameter '%s' has shape %s; all parameters must have shape %s"
                                 % (self.op_name, name, fmt(shape), fmt(first)))
        return [first] * len(params), [first + tuple(self.shape)]

    def infer_type(self, *params):
        known = [p for p in params if p is not None]
        if not known:
            return None
        if np.dtype(known[0]).kind != "f":
            raise MXNetError("%s: parameters must be floating point arrays, got %s" % (self.op_name, known[0]))
        return [known[0]] * len(params), [np.dtype(self.dtype or "float32")]

    def lower(self, g, *params):
        dtype = np.dtype(self.dtype or "float32")
        compute = _compute_dtype(dtype)
        pshape = tuple(g.shape(params[0]))
        shape = pshape + tuple(self.shape)
        spread = g.int64s(pshape + (1,) * len(self.shape))
        values = [g.Reshape(_as(g, p, g.dtype(p), compute), spread) for p in params]
        return _as(g, _sample(g, self._dist, values, shape, compute), compute, dtype)


def _random_op(dist, params, aliases, doc):
    """Register `_random_<dist>` with scalar parameters `params` ((name, default, doc) triples)."""
    annotations = {name: float for name, _, _ in params}
    namespace = {name: param(default, doc=pdoc) for name, default, pdoc in params}
    annotations.update(shape=Shape, ctx=str, dtype=typing.Optional[Dtype])
    namespace.update(shape=param(Shape(()), doc="Shape of the output."), ctx=param("", doc=CTX_DOC),
                     dtype=param(None, choices=_FLOATS, doc=_DTYPE_DOC))
    namespace.update(__annotations__=annotations, __doc__=doc, _dist=dist,
                     _params=tuple(name for name, _, _ in params), aliases=aliases)
    register(type("_random_" + dist, (_RandomOp,), namespace))
    like = {name: param(default, doc=pdoc) for name, default, pdoc in params}
    like.update(__annotations__={name: float for name, _, _ in params}, __doc__=doc + " The shape and dtype of "
                "`data`.", _dist=dist, _params=tuple(name for name, _, _ in params))
    register(type("_random_%s_like" % dist, (_RandomLike,), like))


def _sample_op(dist, inputs, doc):
    annotations = {"shape": Shape, "dtype": typing.Optional[Dtype]}
    namespace = {"shape": param(Shape(()), doc="Shape to be sampled from each random distribution."),
                 "dtype": param(None, choices=_FLOATS, doc=_DTYPE_DOC)}
    namespace.update(__annotations__=annotations, __doc__=doc, _dist=dist, inputs=tuple(inputs),
                     aliases=("sample_" + dist,))
    register(type("_sample_" + dist, (_SampleOp,), namespace))


_random_op("uniform", [("low", 0.0, "Lower bound of the distribution."),
                       ("high", 1.0, "Upper bound of the distribution.")], ("uniform", "random_uniform"),
           "Draw random samples from a uniform distribution on [low, high).")
_random_op("normal", [("loc", 0.0, "Mean of the distribution."),
                      ("scale", 1.0, "Standard deviation of the distribution.")], ("normal", "random_normal"),
           "Draw random samples from a normal (Gaussian) distribution.")
_random_op("gamma", [("alpha", 1.0, "Alpha parameter (shape) of the gamma distribution."),
                     ("beta", 1.0, "Beta parameter (scale) of the gamma distribution.")], ("random_gamma",),
           "Draw random samples from a gamma distribution.")
_random_op("exponential", [("lam", 1.0, "Lambda parameter (rate) of the exponential distribution.")],
           ("random_exponential",), "Draw random samples from an exponential distribution.")
_random_op("poisson", [("lam", 1.0, "Lambda parameter (rate) of the Poisson distribution.")], ("random_poisson",),
           "Draw random samples from a Poisson distribution.")
_random_op("negative_binomial", [("k", 1.0, "Limit of unsuccessful experiments."),
                                 ("p", 1.0, "Failure probability in each experiment.")],
           ("random_negative_binomial",), "Draw random samples from a negative binomial distribution.")
_random_op("generalized_negative_binomial", [("mu", 1.0, "Mean of the negative binomial distribution."),
                                             ("alpha", 1.0, "Alpha (dispersion) parameter of the negative "
                                                            "binomial distribution.")],
           ("random_generalized_negative_binomial",),
           "Draw random samples from a generalized negative binomial distribution.")

_sample_op("uniform", ("low", "high"), "Concurrent sampling from multiple uniform distributions on [low, high).")
_sample_op("normal", ("mu", "sigma"), "Concurrent sampling from multiple normal distributions.")
_sample_op("gamma", ("alpha", "beta"), "Concurrent sampling from multiple gamma distributions.")
_sample_op("exponential", ("lam",), "Concurrent sampling from multiple exponential distributions.")
_sample_op("poisson", ("lam",), "Concurrent sampling from multiple Poisson distributions.")
_sample_op("negative_binomial", ("k", "p"), "Concurrent sampling from multiple negative binomial distributions.")
_sample_op("generalized_negative_binomial", ("mu", "alpha"),
           "Concurrent sampling from multiple generalized negative binomial distributions.")


@register
class _random_randint(OpDef):
    """Integers drawn uniformly from [low, high). Mirrors MXNet _random_randint."""
    aliases = ("random_randint",)
    inputs = ()
    differentiable = False
    samples = True
    low: int = param(doc="Lower bound of the distribution.")
    high: int = param(doc="Upper bound of the distribution.")
    shape: Shape = param(Shape(()), doc="Shape of the output.")
    ctx: str = param("", doc=CTX_DOC)
    dtype: typing.Optional[Dtype] = param(None, choices=("int32", "int64"), doc=_DTYPE_DOC.replace("float", "int"))

    def __post_init__(self):
        if self.high <= self.low:
            raise MXNetError("randint: high (%d) must be greater than low (%d)" % (self.high, self.low))
        if np.dtype(self.dtype or "int32") == np.int32 and not -2 ** 31 <= self.low < self.high <= 2 ** 31:
            raise MXNetError("randint: [%d, %d) does not fit in int32; pass dtype='int64'" % (self.low, self.high))

    infer_shape = _RandomOp.infer_shape

    def infer_type(self):
        return [], [np.dtype(self.dtype or "int32")]

    def lower(self, g):
        span = float(self.high - self.low)
        scaled = g.Floor(g.Mul(_uniform(g, self.shape, np.float64), g.scalar(span, np.float64)))
        offset = g.Min(g.Cast(scaled, to=onnx_dtype(np.int64)), g.scalar(self.high - self.low - 1, np.int64))
        return g.cast(g.Add(offset, g.scalar(self.low, np.int64)), np.dtype(self.dtype or "int32"))


_MULTINOMIAL_TYPES = ("float16", "float32", "float64", "int32", "uint8")


@register
class _sample_multinomial(OpDef):
    """Class indices drawn from the categorical distributions in the last axis of `data` (probabilities summing to
    1); output data.shape[:-1] + shape, and with get_prob the log-probabilities of the drawn classes. Mirrors MXNet
    _sample_multinomial (gradient of the log-probabilities: head / p at each drawn class)."""
    aliases = ("sample_multinomial",)
    samples = True
    shape: Shape = param(Shape(()), doc="Shape to be sampled from each random distribution.")
    get_prob: bool = param(False, doc="Whether to also return the log probability of sampled result. This is "
                                      "usually used for differentiating through stochastic variables, e.g. in "
                                      "reinforcement learning.")
    dtype: Dtype = param(Dtype("int32"), choices=_MULTINOMIAL_TYPES, doc="DType of the output in case this can't "
                                                                           "be inferred.")

    def output_names(self):
        return ("output", "prob") if self.get_prob else ("output",)

    def infer_shape(self, data):
        if data is None:
            return None
        classes = data[-1]
        limit = {"uint8": 2 ** 8, "float16": 2 ** 11, "float32": 2 ** 24}.get(self.dtype)
        if limit is not None and classes > limit:
            raise MXNetError("_sample_multinomial: %d classes do not fit in the output dtype %s (at most %d)"
                             % (classes, self.dtype, limit))
        out = tuple(data[:-1]) + tuple(self.shape)
        return [data], [out or (1,)] * self.count_outputs()

    def infer_type(self, data):
        if data is None:
            return None
        if np.dtype(data).kind != "f":
            raise MXNetError("_sample_multinomial: data must hold floating point probabilities, got %s"
                             % np.dtype(data))
        return [data], [np.dtype(self.dtype), np.dtype(data)][:self.count_outputs()]

    def lower(self, g, data, drawn=None):
        shape = tuple(g.shape(data))
        rows = int(np.prod(shape[:-1], dtype=np.int64))
        draws = int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1
        out = tuple(shape[:-1]) + tuple(self.shape) or (1,)
        flat = g.Reshape(data, g.int64s([rows, shape[-1]]))
        if drawn is None:
            logits = g.Log(flat if np.dtype(g.dtype(data)) == np.float32 else g.cast(flat, np.float32))
            drawn = g.Multinomial(logits, sample_size=draws, dtype=onnx_dtype(np.int64))
        else:       # the replay: the classes drawn before, in the output dtype
            drawn = g.Reshape(g.cast(drawn, np.int64), g.int64s([rows, draws]))
        drawn = g.stop_gradient(drawn, np.int64)
        samples = g.cast(g.Reshape(drawn, g.int64s(out)), self.dtype)
        if not self.get_prob:
            return samples
        prob = g.Log(g.GatherElements(flat, drawn, axis=1))
        return samples, g.Reshape(prob, g.int64s(out))

    def replay(self):
        return _MultinomialReplay(**self.params())


@dataclasses.dataclass(frozen=True)
class _MultinomialReplay(_sample_multinomial):
    """_sample_multinomial given the classes it drew (input `drawn`, recorded by mx.autograd): the same outputs,
    its log-probabilities differentiable with respect to `data`. Not an MXNet operator (not registered)."""
    op_name = "_sample_multinomial_replay"
    samples = False
    inputs = ("data", "drawn")

    def infer_shape(self, data, drawn=None):
        shapes = super().infer_shape(data)
        return shapes and ([shapes[0][0], shapes[1][0]], shapes[1])

    def infer_type(self, data, drawn=None):
        types = super().infer_type(data)
        return types and ([types[0][0], np.dtype(self.dtype)], types[1])

    def replay(self):
        return None


@register
class _shuffle(OpDef):
    """The array with its first axis randomly permuted. Mirrors MXNet _shuffle (not differentiable)."""
    aliases = ("shuffle",)
    differentiable = False
    samples = True

    def lower(self, g, data):
        n = g.shape(data)[0]
        keys = _uniform(g, (n,), np.float32)
        _, order = g.TopK(keys, g.int64s([n]), axis=0, _outputs=2)
        return g.Gather(data, order, axis=0)


@register(name="_random_pdf_dirichlet")
class random_pdf_dirichlet(OpDef):
    """The density (is_log: its log) of each sample under the Dirichlet distribution of its alpha: sample of shape
    alpha.shape[:-1] + (draws...) + (K,), alpha (..., K); output sample.shape[:-1]. log pdf = lgamma(sum alpha)
    - sum lgamma(alpha) + sum (alpha - 1) log(sample) (MXNet pdf_op.h); differentiable in sample and alpha."""
    aliases = ("random_pdf_dirichlet",)
    inputs = ("sample", "alpha")
    is_log: bool = param(False, doc="Whether to compute the log density instead of the density.")
    float_only = True

    def infer_shape(self, sample, alpha):
        if sample is None or alpha is None:
            return None
        sample, alpha = tuple(sample), tuple(alpha)
        if len(sample) < len(alpha) or sample[:len(alpha) - 1] != alpha[:-1] or sample[-1] != alpha[-1]:
            raise MXNetError("random_pdf_dirichlet: sample of shape %s does not fit alpha of shape %s (sample must be "
                             "alpha.shape[:-1] + (draws...) + (K,))" % (sample, alpha))
        return [sample, alpha], [sample[:-1]]

    def lower(self, g, sample, alpha):
        sample_shape, alpha_shape = tuple(g.shape(sample)), tuple(g.shape(alpha))
        extra = len(sample_shape) - len(alpha_shape)
        a = alpha if not extra else g.Reshape(alpha, g.int64s(alpha_shape[:-1] + (1,) * extra + alpha_shape[-1:]))
        dtype = g.dtype(sample)
        g.set_info(a, alpha_shape[:-1] + (1,) * extra + alpha_shape[-1:], dtype)
        total = g.ReduceSum(a, g.int64s([-1]), keepdims=0)
        g.set_info(total, alpha_shape[:-1] + (1,) * extra, dtype)
        terms = g.Mul(g.Sub(a, g.scalar(1, dtype)), g.Log(sample))
        log_pdf = g.Sub(g.Add(g.ReduceSum(terms, g.int64s([-1]), keepdims=0), _lgamma(g, total)),
                        g.ReduceSum(_lgamma(g, a), g.int64s([-1]), keepdims=0))
        return log_pdf if self.is_log else g.Exp(log_pdf)
