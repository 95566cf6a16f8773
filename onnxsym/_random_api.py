"""The functions of `mx.nd.random` and `mx.sym.random` (MXNet python/mxnet/{ndarray,symbol}/random.py), written
once for both: numbers as parameters call `_random_<dist>` (one distribution, `shape` draws), arrays or Symbols
call `_sample_<dist>` (one distribution per element); the `<dist>_like` ops take the shape of `data`.

`random_functions(call, array_type, imperative)` builds them around `call(op_name, args, kwargs, out, ctx)`, which
runs the op (NDArrays) or makes its node (Symbols)."""
from .base import numeric_types

__all__ = ["random_functions", "FUNCTIONS", "LIKE_OPS"]

FUNCTIONS = ("uniform", "normal", "randn", "poisson", "exponential", "gamma", "multinomial", "negative_binomial",
             "generalized_negative_binomial", "shuffle", "randint")
LIKE_OPS = ("uniform", "normal", "gamma", "exponential", "poisson", "negative_binomial",
            "generalized_negative_binomial")
_NOTHING = object()     # an argument not given (MXNet's _Null)


def random_functions(call, array_type, imperative):
    """{name: function} for one of the two namespaces."""
    kind = "NDArray" if imperative else "Symbol"

    def helper(dist, params, shape, dtype, ctx, out, kwargs, sampler=True):
        given = {k: v for k, v in (("shape", shape), ("dtype", dtype)) if v is not _NOTHING}
        if isinstance(params[0], array_type):
            for other in params[1:]:
                assert isinstance(other, array_type), "Distribution parameters must all have the same type, but " \
                    "got both %s and %s." % (type(params[0]), type(other))
            if not sampler:
                raise ValueError("%s: the bounds must be numbers" % dist)
            return call("_sample_" + dist, tuple(params), dict(given, **kwargs), out, None)
        if isinstance(params[0], numeric_types):
            for other in params[1:]:
                assert isinstance(other, numeric_types), "Distribution parameters must all have the same type, " \
                    "but got both %s and %s." % (type(params[0]), type(other))
            if imperative and "shape" not in given:
                given["shape"] = out.shape if out is not None else (1,)
            if imperative and "dtype" not in given and out is not None:
                given["dtype"] = out.dtype
            names = _PARAMS[dist]
            return call("_random_" + dist, (), dict(given, **dict(zip(names, params)), **kwargs), out, ctx)
        raise ValueError("Distribution parameters must be either %s or numbers, but got %s."
                         % (kind, type(params[0])))

    def uniform(low=0, high=1, shape=_NOTHING, dtype=_NOTHING, ctx=None, out=None, **kwargs):
        """Samples from uniform distributions on [low, high): numbers give `shape` draws of one, arrays one
        distribution per element (output low.shape + shape)."""
        return helper("uniform", [low, high], shape, dtype, ctx, out, kwargs)

    def normal(loc=0, scale=1, shape=_NOTHING, dtype=_NOTHING, ctx=None, out=None, **kwargs):
        """Samples from normal distributions of mean `loc` and standard deviation `scale`."""
        return helper("normal", [loc, scale], shape, dtype, ctx, out, kwargs)

    def randn(*shape, **kwargs):
        """Samples from a normal distribution, the shape given as positional arguments."""
        loc, scale = kwargs.pop("loc", 0), kwargs.pop("scale", 1)
        dtype, ctx, out = kwargs.pop("dtype", _NOTHING), kwargs.pop("ctx", None), kwargs.pop("out", None)
        assert isinstance(loc, (int, float, array_type))
        assert isinstance(scale, (int, float, array_type))
        return helper("normal", [loc, scale], shape, dtype, ctx, out, kwargs)

    def poisson(lam=1, shape=_NOTHING, dtype=_NOTHING, ctx=None, out=None, **kwargs):
        """Samples from Poisson distributions of rate `lam`."""
        return helper("poisson", [lam], shape, dtype, ctx, out, kwargs)

    def exponential(scale=1, shape=_NOTHING, dtype=_NOTHING, ctx=None, out=None, **kwargs):
        """Samples from exponential distributions of scale `scale` (rate 1/scale)."""
        return helper("exponential", [1.0 / scale], shape, dtype, ctx, out, kwargs)

    def gamma(alpha=1, beta=1, shape=_NOTHING, dtype=_NOTHING, ctx=None, out=None, **kwargs):
        """Samples from gamma distributions of shape `alpha` and scale `beta`."""
        return helper("gamma", [alpha, beta], shape, dtype, ctx, out, kwargs)

    def negative_binomial(k=1, p=1, shape=_NOTHING, dtype=_NOTHING, ctx=None, out=None, **kwargs):
        """Samples from negative binomial distributions: failures before `k` successes of probability `p`."""
        return helper("negative_binomial", [k, p], shape, dtype, ctx, out, kwargs)

    def generalized_negative_binomial(mu=1, alpha=1, shape=_NOTHING, dtype=_NOTHING, ctx=None, out=None,
                                      **kwargs):
        """Samples from generalized negative binomial distributions of mean `mu` and dispersion `alpha`."""
        return helper("generalized_negative_binomial", [mu, alpha], shape, dtype, ctx, out, kwargs)

    def multinomial(data, shape=_NOTHING, get_prob=False, out=None, dtype="int32", **kwargs):
        """Class indices drawn from the distributions in the last axis of `data`; with get_prob also their
        log-probabilities."""
        given = {} if shape is _NOTHING else {"shape": shape}
        return call("_sample_multinomial", (data,), dict(given, get_prob=get_prob, dtype=dtype, **kwargs), out,
                    None)

    def shuffle(data, **kwargs):
        """`data` with its first axis randomly permuted."""
        out = kwargs.pop("out", None)
        return call("_shuffle", (data,), kwargs, out, None)

    def randint(low, high, shape=_NOTHING, dtype=_NOTHING, ctx=None, out=None, **kwargs):
        """Integers drawn uniformly from [low, high) (int32 unless `dtype`)."""
        return helper("randint", [low, high], shape, dtype, ctx, out, kwargs, sampler=False)

    functions = {f.__name__: f for f in (uniform, normal, randn, poisson, exponential, gamma, multinomial,
                                         negative_binomial, generalized_negative_binomial, shuffle, randint)}
    for dist in LIKE_OPS:
        functions[dist + "_like"] = _like(call, dist)
    return functions


def _like(call, dist):
    op_name = "_random_%s_like" % dist

    def like(data=None, out=None, name=None, **kwargs):
        return call(op_name, (data,), dict(kwargs, **({} if name is None else {"name": name})), out, None)
    like.__name__ = like.__qualname__ = dist + "_like"
    like.__doc__ = "Samples like `%s` (scalar parameters) of the shape and dtype of `data`." % dist
    return like


_PARAMS = {"uniform": ("low", "high"), "normal": ("loc", "scale"), "poisson": ("lam",), "exponential": ("lam",),
           "gamma": ("alpha", "beta"), "negative_binomial": ("k", "p"),
           "generalized_negative_binomial": ("mu", "alpha"), "randint": ("low", "high")}
