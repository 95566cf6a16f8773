"""Random sampling ops: the samples follow their distributions (chi-square tests against exact probabilities
computed here from the closed forms: erf, the incomplete gamma series, log-gamma pmfs), `mx.random.seed` makes
draws repeat (imperative calls, bound executors, training graphs), different calls and sessions draw differently,
and an exported graph samples in plain ONNX Runtime. MXNet's own values cannot be matched bit for bit (its
generators are not ONNX Runtime's); MXNet's test_random.py, run by ../shared/tools/mxnet_unittest, checks the same
properties against scipy."""
import itertools
import math

import numpy as np
import onnxruntime as ort
import pytest

import onnxsym as mx
from onnxsym.base import MXNetError
from .opcase import OpCase, run_case

N = 200000
RNG_X = np.random.RandomState(11)

# Coverage and zero-gradient cases (tests/ops/test_gradients.py checks that the sample ops pass zero gradients
# back to their parameters, as MXNet's); their values are checked by the statistical tests below, not `ref`.
_PARAMS = {"uniform": ("low", "high"), "normal": ("mu", "sigma"), "gamma": ("alpha", "beta"),
           "exponential": ("lam",), "poisson": ("lam",), "negative_binomial": ("k", "p"),
           "generalized_negative_binomial": ("mu", "alpha")}
CASES = [OpCase("_sample_" + dist, dict(shape=(3,)), {name: (2,) for name in names}, None, low=0.2, high=0.8)
         for dist, names in _PARAMS.items()]
CASES += [OpCase("_random_%s_like" % dist, {}, {"data": (2, 3)}, None) for dist in _PARAMS]
CASES += [OpCase("_shuffle", {}, {"data": (4, 3)}, None),
          OpCase("_sample_multinomial", dict(shape=(2,)), {"data": (2, 3)}, None, low=0.1, high=1.0)]
CASES += [OpCase("_random_" + dist, dict(shape=(2, 3)), {}, None) for dist in _PARAMS]
CASES += [OpCase("_random_randint", dict(low=0, high=5, shape=(2, 3)), {}, None)]
GRADIENT_SKIPS = {"_random_" + dist: "no inputs: nothing to differentiate" for dist in list(_PARAMS) + ["randint"]}
GRADIENT_SKIPS["_sample_multinomial"] = ("each run draws other classes, so finite differences cannot see its "
                                         "gradient: test_multinomial_log_probability_gradient checks it")


# ------------------------------------------------------------------------------------------------ exact laws
def _normal_cdf(x, mu=0.0, sigma=1.0):
    return 0.5 * (1 + math.erf((x - mu) / (sigma * math.sqrt(2))))


def _gamma_cdf(x, alpha, beta=1.0):
    """Regularized lower incomplete gamma P(alpha, x / beta) by its power series (converges for every x)."""
    x = x / beta
    if x <= 0:
        return 0.0
    term = total = 1.0 / alpha
    n = 0
    while term > total * 1e-16:
        n += 1
        term *= x / (alpha + n)
        total += term
    return math.exp(alpha * math.log(x) - x - math.lgamma(alpha)) * total


def _poisson_pmf(k, lam):
    return math.exp(k * math.log(lam) - lam - math.lgamma(k + 1)) if lam > 0 else float(k == 0)


def _nbinom_pmf(x, k, p):
    """Failures before the k-th success of probability p (MXNet's negative_binomial)."""
    return math.exp(math.lgamma(x + k) - math.lgamma(k) - math.lgamma(x + 1) + k * math.log(p) +
                    x * math.log1p(-p))


def _chi_square(counts, probs, draws):
    """Pearson's statistic against the 1e-5 upper quantile of chi-square (Wilson-Hilferty), buckets with an
    expected count below 5 merged into their neighbour."""
    counts, probs = list(counts), list(probs)
    merged_c, merged_p = [], []
    for c, p in zip(counts, probs):
        if merged_p and merged_p[-1] * draws < 5:
            merged_c[-1] += c
            merged_p[-1] += p
        else:
            merged_c.append(c)
            merged_p.append(p)
    expected = np.array(merged_p) * draws
    stat = float(np.sum((np.array(merged_c) - expected) ** 2 / expected))
    df = len(merged_p) - 1
    z = 4.265      # standard normal 1e-5 upper quantile
    limit = df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3
    return stat, limit


def _check_continuous(samples, cdf, quantiles=20):
    """Equal-probability buckets of the exact `cdf` (found by bisection)."""
    samples = np.asarray(samples, np.float64).ravel()
    lo, hi = float(np.min(samples)) - 1.0, float(np.max(samples)) + 1.0
    edges = []
    for q in np.arange(1, quantiles) / quantiles:
        a, b = lo, hi
        for _ in range(80):
            m = (a + b) / 2
            a, b = (m, b) if cdf(m) < q else (a, m)
        edges.append((a + b) / 2)
    counts = np.bincount(np.searchsorted(edges, samples), minlength=quantiles)
    stat, limit = _chi_square(counts, [1.0 / quantiles] * quantiles, samples.size)
    assert stat < limit, "chi-square %.1f over %.1f" % (stat, limit)


def _check_discrete(samples, pmf, top):
    samples = np.asarray(samples, np.float64).ravel()
    assert np.all(samples == np.round(samples)) and np.all(samples >= 0)
    probs = [pmf(k) for k in range(top)]
    probs.append(max(0.0, 1 - sum(probs)))
    counts = np.bincount(np.minimum(samples.astype(np.int64), top), minlength=top + 1)
    stat, limit = _chi_square(counts, probs, samples.size)
    assert stat < limit, "chi-square %.1f over %.1f" % (stat, limit)


LAWS = [
    ("uniform", dict(low=-1.5, high=3.0), lambda x: min(max((x + 1.5) / 4.5, 0.0), 1.0), None),
    ("normal", dict(loc=1.0, scale=2.0), lambda x: _normal_cdf(x, 1.0, 2.0), None),
    ("exponential", dict(scale=0.25), lambda x: 1 - math.exp(-4 * x) if x > 0 else 0.0, None),
    ("gamma", dict(alpha=9.0, beta=0.5), lambda x: _gamma_cdf(x, 9.0, 0.5), None),
    ("gamma", dict(alpha=0.3, beta=2.0), lambda x: _gamma_cdf(x, 0.3, 2.0), None),
    ("poisson", dict(lam=4.0), None, (lambda k: _poisson_pmf(k, 4.0), 15)),
    ("poisson", dict(lam=9.99), None, (lambda k: _poisson_pmf(k, 9.99), 25)),
    ("poisson", dict(lam=25.0), None, (lambda k: _poisson_pmf(k, 25.0), 45)),
    ("poisson", dict(lam=1000.0), None, (lambda k: _poisson_pmf(k, 1000.0), 1120)),
    ("negative_binomial", dict(k=3, p=0.4), None, (lambda x: _nbinom_pmf(x, 3, 0.4), 25)),
    ("generalized_negative_binomial", dict(mu=2.0, alpha=0.3), None,
     (lambda x: _nbinom_pmf(x, 1 / 0.3, 1 / (2.0 * 0.3 + 1)), 15)),
    ("generalized_negative_binomial", dict(mu=2.0, alpha=0.0), None, (lambda k: _poisson_pmf(k, 2.0), 12)),
]


def _check_law(samples, cdf, discrete):
    if cdf is not None:
        _check_continuous(samples, cdf)
    else:
        _check_discrete(samples, *discrete)


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
@pytest.mark.parametrize("dist,params,cdf,discrete", LAWS, ids=lambda v: str(v) if isinstance(v, str) else None)
def test_samples_follow_their_distribution(dist, params, cdf, discrete, dtype):
    mx.random.seed(7)
    samples = getattr(mx.nd.random, dist)(shape=(N,), dtype=dtype, **params)
    assert samples.dtype == np.dtype(dtype) and samples.shape == (N,)
    _check_law(samples.asnumpy(), cdf, discrete)


def test_a_wrong_law_is_rejected():
    """The check itself: Poisson(4.2) samples fail against Poisson(4), gamma(9, 0.5) against gamma(9.3, 0.5)."""
    with pytest.raises(AssertionError):
        _check_discrete(mx.nd.random.poisson(4.2, shape=(N,)).asnumpy(), lambda k: _poisson_pmf(k, 4.0), 15)
    with pytest.raises(AssertionError):
        _check_continuous(mx.nd.random.gamma(9.0, 0.5, shape=(N,)).asnumpy(), lambda x: _gamma_cdf(x, 9.3, 0.5))


SAMPLE_PARAMS = {
    "uniform": ([[0.0, 2.5], [-9.0, 3.0]], [[1.0, 3.7], [-1.0, 3.5]],
                lambda lo, hi: (lambda x: min(max((x - lo) / (hi - lo), 0.0), 1.0), None)),
    "normal": ([[0.0, 2.5], [-9.0, 3.0]], [[1.0, 3.7], [1.0, 0.5]], lambda m, s: (lambda x: _normal_cdf(x, m, s), None)),
    "gamma": ([[0.1, 2.5], [9.75, 11.0]], [[1.0, 0.7], [0.5, 0.3]], lambda a, b: (lambda x: _gamma_cdf(x, a, b), None)),
    "exponential": ([[1.0, 8.5], [2.7, 0.5]], None, lambda lam: (lambda x: 1 - math.exp(-lam * x) if x > 0 else 0.0,
                                                                  None)),
    "poisson": ([[25.0, 8.5], [2.7, 0.5]], None, lambda lam: (None, (lambda k: _poisson_pmf(k, lam), int(lam * 2 + 12)))),
    "negative_binomial": ([[3, 4], [5, 6]], [[0.4, 0.77], [0.5, 0.84]],
                          lambda k, p: (None, (lambda x: _nbinom_pmf(x, k, p), 30))),
    "generalized_negative_binomial": ([[2.0, 2.5], [1.3, 1.9]], [[1.0, 0.1], [0.2, 0.5]],
                                      lambda mu, a: (None, (lambda x: _nbinom_pmf(x, 1 / a, 1 / (mu * a + 1)), 30))),
}


@pytest.mark.parametrize("dist", sorted(SAMPLE_PARAMS))
def test_sample_ops_draw_one_distribution_per_element(dist):
    """mx.nd.random.<dist>(array, array, shape) -> _sample_<dist>: params.shape + shape, each element's own law."""
    first, second, law = SAMPLE_PARAMS[dist]
    arrays = [mx.nd.array(first)] + ([] if second is None else [mx.nd.array(second)])
    if dist == "exponential":       # mx.nd.random.exponential takes the scale: lam = 1 / scale
        arrays = [1.0 / arrays[0]]
    samples = getattr(mx.nd.random, dist)(*arrays, shape=(40000,)).asnumpy()
    assert samples.shape == (2, 2, 40000) and samples.dtype == np.float32
    for i, j in itertools.product(range(2), range(2)):
        args = [first[i][j]] + ([] if second is None else [second[i][j]])
        cdf, discrete = law(*args)
        _check_law(samples[i, j], cdf, discrete)


def test_symbolic_sampling_matches_the_imperative_law_and_shapes():
    mu, sigma = mx.sym.var("mu"), mx.sym.var("sigma")
    sym = mx.sym.random.normal(mu, sigma, shape=(3, 5000))
    assert sym.name.startswith("_sample_normal") and sym.list_arguments() == ["mu", "sigma"]
    _, out_shapes, _ = sym.infer_shape(mu=(2,), sigma=(2,))
    assert out_shapes == [(2, 3, 5000)]
    exe = sym.bind(mx.cpu(), {"mu": mx.nd.array([0.0, 100.0]), "sigma": mx.nd.array([1.0, 0.1])})
    out = exe.forward()[0].asnumpy()
    _check_continuous(out[0], lambda x: _normal_cdf(x, 0.0, 1.0))
    _check_continuous(out[1], lambda x: _normal_cdf(x, 100.0, 0.1))
    like = mx.sym.random.gamma_like(mx.sym.var("data"), alpha=2.0, beta=3.0)
    assert like.name.startswith("gamma_like")
    exe = like.bind(mx.cpu(), {"data": mx.nd.zeros((100, 300), dtype="float64")})
    out = exe.forward()[0]
    assert out.dtype == np.float64 and out.shape == (100, 300)
    _check_continuous(out.asnumpy(), lambda x: _gamma_cdf(x, 2.0, 3.0))


def test_seed_repeats_draws_and_calls_differ():
    for dist, kwargs in (("uniform", {}), ("gamma", dict(alpha=0.5)), ("poisson", dict(lam=30.0)),
                         ("randint", dict(low=-3, high=90))):
        fn = getattr(mx.nd.random, dist)
        args = (kwargs.pop("low"), kwargs.pop("high")) if dist == "randint" else ()
        mx.random.seed(128)
        a, b = fn(*args, shape=(50,), **kwargs).asnumpy(), fn(*args, shape=(50,), **kwargs).asnumpy()
        mx.random.seed(128)
        c = fn(*args, shape=(50,), **kwargs).asnumpy()
        np.testing.assert_array_equal(a, c)
        assert not np.array_equal(a, b), dist
        mx.random.seed(129)
        assert not np.array_equal(a, fn(*args, shape=(50,), **kwargs).asnumpy()), dist
    # two sessions (shapes) never share a stream: a (2,) draw is not the start of a (3,) draw
    mx.random.seed(5)
    short, long = mx.nd.random.uniform(shape=(2,)).asnumpy(), mx.nd.random.uniform(shape=(3,)).asnumpy()
    assert not np.array_equal(short, long[:2])


def test_seed_repeats_draws_of_bound_executors():
    """MXNet's test_random: an executor bound before mx.random.seed draws the seed's samples, in a training
    forward and in an inference forward; backward of `sample + X` passes the head to X."""
    x = mx.nd.zeros((20, 30))
    grad = mx.nd.zeros((20, 30))
    exe = (mx.sym.random.poisson(lam=12.0, shape=(20, 30)) + mx.sym.var("X")).bind(mx.cpu(), {"X": x}, {"X": grad})
    mx.random.seed(128)
    exe.forward(is_train=True)
    exe.backward(exe.outputs[0])
    first = exe.outputs[0].asnumpy().copy()
    np.testing.assert_array_equal(grad.asnumpy(), first)
    mx.random.seed(128)
    np.testing.assert_array_equal(exe.forward()[0].asnumpy(), first)
    assert not np.array_equal(exe.forward()[0].asnumpy(), first)
    mx.random.seed(128)
    exe.forward(is_train=True)
    np.testing.assert_array_equal(exe.outputs[0].asnumpy(), first)


def test_an_exported_graph_samples_in_plain_onnx_runtime(tmp_path):
    data = mx.sym.var("data")
    net = mx.sym.broadcast_add(data, mx.sym.random.negative_binomial(k=3, p=0.4, shape=(1, 50000)))
    path = str(tmp_path / "sampling.onnx")
    mx.onnx.export_model(net, {}, [(2, 50000)], np.float32, path)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    out = session.run(None, {session.get_inputs()[0].name: np.full((2, 50000), 10.0, np.float32)})[0]
    assert out.shape == (2, 50000)
    _check_discrete(out[0] - 10.0, lambda x: _nbinom_pmf(x, 3, 0.4), 25)
    second = session.run(None, {session.get_inputs()[0].name: np.zeros((2, 50000), np.float32)})[0]
    assert not np.array_equal(out - 10.0, second)


def test_multinomial_frequencies_and_log_probabilities():
    probs = np.array([[0.0, 0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1, 0.0]], np.float32)
    for dtype in ("uint8", "int32", "float16", "float32", "float64"):
        y, logp = mx.nd.random.multinomial(mx.nd.array(probs), shape=20000, get_prob=True, dtype=dtype)
        assert y.dtype == np.dtype(dtype) and y.shape == (2, 20000) and logp.dtype == np.float32
        y = y.asnumpy().astype(np.int64)
        for row in range(2):
            counts = np.bincount(y[row], minlength=5)
            assert counts[probs[row] == 0].sum() == 0
            stat, limit = _chi_square(counts[probs[row] > 0], probs[row][probs[row] > 0], 20000)
            assert stat < limit
            np.testing.assert_allclose(logp.asnumpy()[row], np.log(probs[row][y[row]]), rtol=1e-6)
    single = mx.nd.random.multinomial(mx.nd.array([0.5, 0.5]))
    assert single.shape == (1,) and single.dtype == np.int32
    assert isinstance(mx.nd.random.multinomial(mx.nd.array(probs), shape=3, get_prob=False), mx.nd.NDArray)
    with pytest.raises(MXNetError, match="do not fit"):
        mx.nd.random.multinomial(mx.nd.zeros(300) + 1 / 300.0, dtype="uint8")


def test_multinomial_log_probability_gradient():
    """d/dp of sum(head * log p[drawn]) = head / p at each drawn class, summed (MXNet's _backward_sample_multinomial);
    the drawn classes are those of the same forward."""
    probs = np.array([[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]], np.float32)
    sym = mx.sym.random.multinomial(mx.sym.var("p"), shape=(6,), get_prob=True)
    grad = mx.nd.zeros((2, 3))
    exe = sym.bind(mx.cpu(), {"p": mx.nd.array(probs)}, {"p": grad})
    exe.forward(is_train=True)
    drawn = exe.outputs[0].asnumpy().astype(np.int64)
    head = np.random.RandomState(0).uniform(0.5, 2, (2, 6)).astype(np.float32)
    exe.backward([mx.nd.zeros((2, 6)), mx.nd.array(head)])
    expected = np.zeros((2, 3))
    for row, col in itertools.product(range(2), range(6)):
        expected[row, drawn[row, col]] += head[row, col] / probs[row, drawn[row, col]]
    np.testing.assert_allclose(grad.asnumpy(), expected, rtol=1e-5)


def test_shuffle_permutes_the_first_axis_uniformly():
    data = mx.nd.arange(0, 18).reshape((3, 2, 3))
    seen = {}
    for _ in range(1200):
        out = mx.nd.random.shuffle(data).asnumpy()
        firsts = tuple(out[:, 0, 0].astype(int))
        np.testing.assert_array_equal(out, data.asnumpy()[np.array(firsts) // 6])
        seen[firsts] = seen.get(firsts, 0) + 1
    assert len(seen) == 6
    stat, limit = _chi_square(list(seen.values()), [1 / 6] * 6, 1200)
    assert stat < limit
    sorted_back = mx.sym.sort(mx.sym.random.shuffle(mx.sym.var("a")), axis=0)
    np.testing.assert_array_equal(sorted_back.eval(a=mx.nd.arange(0, 5))[0].asnumpy(), np.arange(5))


def test_randint_range_dtype_and_errors():
    for dtype, low, high in (("int32", -500, 199), ("int64", 50000000, 50000010), ("int64", -2 ** 40, 2 ** 40)):
        out = mx.nd.random.randint(low, high, shape=(N,), dtype=dtype)
        assert out.dtype == np.dtype(dtype)
        values = out.asnumpy()
        assert values.min() >= low and values.max() < high
        if high - low <= 1000:
            counts = np.bincount(values - low, minlength=high - low)
            stat, limit = _chi_square(counts, [1.0 / (high - low)] * (high - low), N)
            assert stat < limit
    assert mx.nd.random.randint(low=50000000, high=50000010).dtype == np.int32
    with pytest.raises(MXNetError, match="greater than low"):
        mx.nd.random.randint(3, 3)
    with pytest.raises(MXNetError, match="int32"):
        mx.nd.random.randint(0, 2 ** 33)
    with pytest.raises(ValueError):
        mx.nd.random.randint(mx.nd.array([0]), mx.nd.array([3]))


def test_argument_errors_as_mxnets():
    with pytest.raises(MXNetError, match="float16"):
        mx.nd.random.uniform(0, 1, shape=2, dtype="int32")
    with pytest.raises(AssertionError, match="same type"):
        mx.nd.random.normal(mx.nd.array([0.0]), 1.0)
    with pytest.raises(ValueError, match="NDArray or numbers"):
        mx.nd.random.normal("0", 1.0)
    with pytest.raises(ValueError, match="Symbol or numbers"):
        mx.sym.random.normal("0", 1.0)
    with pytest.raises(MXNetError, match="all parameters must have shape"):
        mx.nd.random.gamma(mx.nd.ones((2,)), mx.nd.ones((3,)))
    # MXNet's checks of the scalar parameters, when the op runs, never NaN draws: with mx.nd the error comes at the
    # first read of the result, as MXNet's asynchronous engine delivers it (test_exc_handling)
    for bad, match in [(lambda: mx.nd.random.normal(0, -1, shape=(2,)), "scale parameter in gaussian"),
                       (lambda: mx.nd.random.uniform(2, 1, shape=(2,)), "low must be less or equal to high"),
                       (lambda: mx.nd.random.gamma(0, 1, shape=(2,)), "alpha parameter in gamma"),
                       (lambda: mx.nd.random.exponential(scale=-1.0, shape=(2,)), "lambda parameter"),
                       (lambda: mx.nd.random.poisson(-1, shape=(2,)), "non-negative"),
                       (lambda: mx.nd.random.normal_like(mx.nd.ones((2,)), scale=0), "has to be positive")]:
        result = bad()
        with pytest.raises(MXNetError, match=match):
            result.asnumpy()
    with pytest.raises(MXNetError, match="scale parameter in gaussian"):    # at bind here, at forward in MXNet
        mx.sym.random.normal(0, -1, shape=(2,)).simple_bind(mx.cpu()).forward()
    assert (mx.nd.random.poisson(0, shape=(3,)).asnumpy() == 0).all()      # lam = 0 is allowed (MXNet: >= 0)
    # no shape: MXNet's default draw is one value imperatively, unknown symbolically
    assert mx.nd.random.uniform().shape == (1,)
    assert mx.sym.random.uniform().infer_shape()[1] is None


def test_mx_random_is_the_sampling_namespace():
    assert mx.random.uniform is mx.nd.random.uniform and mx.random.multinomial is mx.nd.random.multinomial
    out = mx.nd.zeros((4, 5), dtype="float64")
    assert mx.random.normal(0, 1, out=out) is out and out.asnumpy().std() > 0
    assert mx.nd.random_uniform(shape=(2,)).shape == (2,) and mx.nd.sample_normal(mx.nd.zeros(2), mx.nd.ones(2)).shape == (2,)


def test_backward_after_an_inference_forward_uses_its_draws():
    """y = x * u with u drawn in the graph: backward after forward() gives dy/dx = u = y / x of that forward (it
    drew other values when backward ran the graph again), forward after forward draws anew, and a second backward
    repeats the first."""
    x = mx.nd.array(RNG_X.uniform(1, 2, (4, 5)))
    grad = mx.nd.zeros((4, 5))
    exe = (mx.sym.var("x") * mx.sym.random.uniform(shape=(4, 5))).bind(mx.cpu(), {"x": x}, {"x": grad})
    previous = None
    for _ in range(2):
        out = exe.forward()[0].asnumpy()
        assert previous is None or not np.array_equal(out, previous)
        previous = out
        exe.backward(mx.nd.ones((4, 5)))
        np.testing.assert_allclose(grad.asnumpy(), out / x.asnumpy(), rtol=1e-6)
        exe.backward(mx.nd.ones((4, 5)))
        np.testing.assert_allclose(grad.asnumpy(), out / x.asnumpy(), rtol=1e-6)


def test_any_int_seeds_every_stream():
    # MXNet's test_random_seed draws seeds from [-2^31, 2^31): negative ones included
    for value in (-(1 << 31), -5, 0, (1 << 31) - 1, 1 << 40):
        mx.random.seed(value)
        first = mx.nd.random.uniform(shape=(4,)).asnumpy()
        mx.random.seed(value)
        assert (mx.nd.random.uniform(shape=(4,)).asnumpy() == first).all()
    with pytest.raises(ValueError):
        mx.random.seed(1.5)


def _dirichlet_log_pdf(sample, alpha):
    lg = np.vectorize(math.lgamma)
    a = alpha.reshape(alpha.shape[:-1] + (1,) * (sample.ndim - alpha.ndim) + alpha.shape[-1:])
    return ((a - 1) * np.log(sample)).sum(-1) + lg(a.sum(-1)) - lg(a).sum(-1)


_SIMPLEX = np.array([[[0.2, 0.3, 0.5], [0.1, 0.1, 0.8]], [[0.6, 0.3, 0.1], [0.3, 0.3, 0.4]]])
_ALPHA = np.array([[0.5, 1.5, 2.0], [3.0, 1.2, 0.8]])
PDF_CASES = [
    OpCase("random_pdf_dirichlet", dict(is_log=True), {"sample": (2, 2, 3), "alpha": (2, 3)},
           lambda sample, alpha: _dirichlet_log_pdf(sample, alpha), dtype="float64",
           values={"sample": _SIMPLEX, "alpha": _ALPHA}),
    OpCase("random_pdf_dirichlet", {}, {"sample": (2, 2, 3), "alpha": (2, 3)},
           lambda sample, alpha: np.exp(_dirichlet_log_pdf(sample, alpha)), dtype="float32",
           values={"sample": _SIMPLEX.astype(np.float32), "alpha": _ALPHA.astype(np.float32)}, rtol=1e-4),
]
CASES += PDF_CASES


@pytest.mark.parametrize("case", PDF_CASES, ids=str)
def test_dirichlet_density_against_its_formula(case):
    run_case(case)


def test_run_time_errors_come_at_the_next_read_as_in_mxnets_engine():
    # MXNet 1.9.1's test_exc_handling: the call returns, what reads the result (or anything computed from it)
    # raises once; mx.nd.waitall() raises a pending one; the arrays read as zeros afterwards
    a = mx.nd.random.normal(0, 1, (2, 2))
    b = mx.nd.random.normal(0, -1, (2, 2))
    c = mx.nd.dot(a, b)
    with pytest.raises(MXNetError, match="scale parameter"):
        c.asnumpy()
    first, second = mx.nd.random_normal(0, -1, (2, 2)).copyto(mx.cpu())
    with pytest.raises(MXNetError, match="scale parameter"):
        first.wait_to_read()
    assert second.asnumpy().tolist() == [0.0, 0.0]          # delivered once, as MXNet's engine does
    mx.nd.random.normal(0, -1, (2, 2))
    mx.nd.waitall()              # the result was dropped: nothing is waiting
    kept = mx.nd.random.normal(0, -1, (2, 2))
    with pytest.raises(MXNetError, match="scale parameter"):
        mx.nd.waitall()
    mx.nd.waitall()
    assert kept.shape == (2, 2)
