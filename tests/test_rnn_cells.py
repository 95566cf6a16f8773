"""mx.rnn against MXNet 1.9.1 (fixtures from tests/fixtures/make_rnn_fixtures.py, cases in rnn_cases.py): every
cell kind's names, shapes, forward values and gradients, unpack/pack, FusedRNNCell and its unfuse() twin,
BucketSentenceIter, encode_sentences and RNN checkpoints; finite differences in float64 for the gradients of
the recurrent cells; bad use raises MXNetError."""
import json
import os

import numpy as np
import pytest

import onnxsym as mx
from onnxsym.base import MXNetError
from onnxsym.test_utils import check_numeric_gradient

from .fixtures import rnn_cases

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "mxnet")
TOL = {"float16": dict(rtol=2e-2, atol=2e-2), "float32": dict(rtol=1e-4, atol=1e-5),
       "float64": dict(rtol=1e-7, atol=1e-9)}


def _load(name):
    with open(os.path.join(HERE, name + ".json")) as f:
        records = json.load(f)
    return records, np.load(os.path.join(HERE, name + ".npz"))


RECORDS, ARRAYS = _load("rnn")
FUSED_RECORDS, FUSED_ARRAYS = _load("rnn_fused")
with open(os.path.join(HERE, "rnn_extra.json")) as _f:
    EXTRA = json.load(_f)


def _compare(record, arrays, got_record, got, dtype):
    for key in ("nodes", "arguments", "outputs", "aux", "arg_shapes", "out_shapes", "aux_shapes"):
        assert got_record[key] == record[key], key
    assert got_record["out_dtypes"] == [dtype] * len(record["outputs"])
    for key, want in arrays.items():
        assert key in got, key
        np.testing.assert_allclose(got[key].astype(np.float64), want.astype(np.float64), err_msg=key,
                                   **TOL[dtype])


def _check_case(case, records, store):
    record = records[case["name"]]
    dtype = case.get("dtype", "float32")
    scope = rnn_cases.build(mx, case["code"], dtype)
    assert sorted(scope["cell"].params._params) == record["params"]
    want = {k: v for k, v in store.items() if k.startswith(case["name"] + "/")}
    got_record, got = rnn_cases.run(mx, scope["net"], case["shapes"], dtype, case.get("train", True),
                                    exact_in=dtype)
    plain = {k.split("/", 1)[1]: v for k, v in want.items()}
    _compare(record, {k: v for k, v in plain.items() if k.split(":")[0] in ("arg", "out", "grad")}, got_record,
             got, dtype)
    assert ("grad:" + record["arguments"][0] in got) == case.get("train", True)
    args = {k[4:]: v for k, v in got.items() if k.startswith("arg:")}
    unpacked, repacked = rnn_cases.unpack(mx, scope["cell"], args, dtype)
    assert sorted(unpacked) == record["unpacked"] and sorted(repacked) == record["repacked"]
    for name, value in unpacked.items():
        np.testing.assert_array_equal(value, plain["unpacked:" + name].astype(dtype), err_msg=name)
    for name, value in repacked.items():
        np.testing.assert_array_equal(value, args[name], err_msg=name)      # pack(unpack(x)) is x
    return scope, record, plain, unpacked


@pytest.mark.parametrize("case", rnn_cases.CELL_CASES, ids=lambda c: c["name"])
def test_cell_matches_mxnet(case):
    _check_case(case, RECORDS, {k: ARRAYS[k] for k in ARRAYS.files if k.startswith(case["name"] + "/")})


@pytest.mark.parametrize("case", rnn_cases.FUSED_CASES, ids=lambda c: c["name"])
def test_fused_cell_matches_mxnet_and_its_unfuse(case):
    store = {k: FUSED_ARRAYS[k] for k in FUSED_ARRAYS.files if k.startswith(case["name"] + "/")}
    scope, record, plain, unpacked = _check_case(case, FUSED_RECORDS, store)
    # the unfused twin, bound to the unpacked weights packed per cell, gives MXNet's (and the fused) numbers
    rnn_cases.extend(mx, scope, case["unfuse"])
    stack_args = {k: v.asnumpy() for k, v in scope["stack"].pack_weights(
        {k: mx.nd.array(v) for k, v in unpacked.items()}).items()}
    got_record, got = rnn_cases.run(mx, scope["net"], case["shapes"], "float32", False, args=stack_args)
    unfused = {k[len("unfused_"):]: v for k, v in plain.items() if k.startswith("unfused_")}
    _compare(record["unfused"], unfused, got_record, got, "float32")
    for i, name in enumerate(got_record["outputs"]):
        np.testing.assert_allclose(got["out:%d" % i], plain["out:%d" % i], rtol=1e-4, atol=1e-5, err_msg=name)


FD_CELLS = {
    "rnn": lambda: mx.rnn.RNNCell(3, prefix="fr_"),
    "lstm": lambda: mx.rnn.LSTMCell(3, prefix="fl_"),
    "gru": lambda: mx.rnn.GRUCell(3, prefix="fg_"),
    "bidirectional": lambda: mx.rnn.BidirectionalCell(mx.rnn.GRUCell(2, prefix="bl_"),
                                                      mx.rnn.LSTMCell(2, prefix="br_")),
    "sequential": lambda: _stack(mx.rnn.RNNCell(3, activation="relu", prefix="s0_"), mx.rnn.GRUCell(2, prefix="s1_")),
    "residual_lstm": lambda: mx.rnn.ResidualCell(mx.rnn.LSTMCell(4, prefix="rl_")),
}   # the convolutional cells' gradients are checked against MXNet's (float32): Convolution has no float64 kernel


@pytest.mark.parametrize("kind", sorted(FD_CELLS))
def test_cell_gradients_by_finite_differences(kind):
    """float64 end to end (the begin states are Variables, so their gradients are checked too)."""
    cell = FD_CELLS[kind]()
    # MXNet's ModifierCell names the function init_sym, the other cells func
    begin = (cell.begin_state(init_sym=mx.sym.Variable) if isinstance(cell, mx.rnn.ModifierCell)
             else cell.begin_state(func=mx.sym.Variable))
    outs, _ = cell.unroll(2, mx.sym.Variable("data"), begin_state=begin, merge_outputs=True)
    data_shape = (2, 2, 4)
    state_shapes = {s.name: (2,) + tuple(info["shape"][1:]) for s, info in zip(_flat(begin), cell.state_info)}
    arg_shapes, _, _ = outs.infer_shape(data=data_shape, **state_shapes)
    location = rnn_cases.values(dict(zip(outs.list_arguments(), arg_shapes)), "float64", seed=5)
    check_numeric_gradient(outs, location, numeric_eps=1e-6, rtol=1e-5, atol=1e-7, dtype=np.float64)


def _stack(*cells):
    stack = mx.rnn.SequentialRNNCell()
    for cell in cells:
        stack.add(cell)
    return stack


def _flat(states):
    return [s for item in states for s in (_flat(item) if isinstance(item, list) else [item])]


def test_fused_gradient_by_finite_differences():
    cell = mx.rnn.FusedRNNCell(2, num_layers=2, mode="lstm", bidirectional=True, prefix="fd_")
    begin = cell.begin_state(dtype="float64")
    outs, _ = cell.unroll(3, mx.sym.Variable("data"), begin_state=begin, layout="TNC", merge_outputs=True)
    arg_shapes, _, _ = outs.infer_shape(data=(3, 2, 3))
    location = rnn_cases.values(dict(zip(outs.list_arguments(), arg_shapes)), "float64", seed=9)
    check_numeric_gradient(outs, location, numeric_eps=1e-6, rtol=1e-5, atol=1e-7, dtype=np.float64)


@pytest.mark.parametrize("case", rnn_cases.ITER_CASES, ids=lambda c: c["name"])
def test_bucket_sentence_iter_matches_mxnet(case, capsys):
    assert rnn_cases.iterate(mx, case) == EXTRA["iterators"][case["name"]]
    assert "WARNING: discarded" in capsys.readouterr().out


def test_encode_sentences_matches_mxnet():
    for text, want in EXTRA["encode"]:
        got = rnn_cases.encode(mx, text)
        if "error" in want:
            assert "error" in got and "MXNetError" in got["error"] and want["error"][0] in got["error"], text
        else:
            assert json.loads(json.dumps(got)) == want, text


def test_rnn_checkpoint_both_ways(tmp_path):
    record = EXTRA["checkpoint"]
    lstm = mx.rnn.LSTMCell(3, prefix="ck_lstm_")
    fused = mx.rnn.FusedRNNCell(3, num_layers=1, mode="gru", prefix="ck_gru_")
    # MXNet's files, loaded here: packed parameters as MXNet loads them
    sym, loaded, aux = mx.rnn.load_rnn_checkpoint([lstm, fused], os.path.join(HERE, "rnn_ckpt"), 2)
    assert sorted(loaded) == sorted(record["loaded"]) and sorted(aux) == record["aux"]
    for name, value in loaded.items():
        np.testing.assert_array_equal(value.asnumpy(), np.array(record["loaded"][name], dtype=np.float32))
        np.testing.assert_array_equal(value.asnumpy(), np.array(record["packed"][name], dtype=np.float32))
    assert set(sym.list_arguments()) - {"data"} == set(record["packed"])
    # written here through do_rnn_checkpoint: the same unpacked arrays as MXNet's file, and MXNet's symbol
    prefix = str(tmp_path / "ck")
    callback = mx.rnn.do_rnn_checkpoint([lstm, fused], prefix, period=2)
    packed = {k: mx.nd.array(v) for k, v in record["packed"].items()}
    callback(0, sym, packed, {})
    assert not os.path.exists(prefix + "-0001.params")
    callback(1, sym, packed, {})
    ours, theirs = mx.nd.load(prefix + "-0002.params"), mx.nd.load(os.path.join(HERE, "rnn_ckpt-0002.params"))
    assert sorted(ours) == sorted(theirs)
    assert any(k.endswith("i2h_f_weight") for k in ours) and any(k.endswith("l0_h2h_r_bias") for k in ours)
    for name in theirs:
        np.testing.assert_array_equal(ours[name].asnumpy(), theirs[name].asnumpy(), err_msg=name)
    assert mx.sym.load(prefix + "-symbol.json").list_arguments() == sym.list_arguments()


def test_bucketing_lstm_language_model_trains_as_mxnet():
    """MXNet's example/rnn/bucketing/lstm_bucketing.py, small: the parameters after two epochs of SGD and the
    validation perplexity equal MXNet's."""
    want = np.load(os.path.join(HERE, "rnn_lm.npz"))
    initial, params, perplexity = rnn_cases.train_lm(mx)
    assert sorted(params) == sorted(k[len("trained:"):] for k in want.files if k.startswith("trained:"))
    for name, value in initial.items():
        np.testing.assert_array_equal(value, want["initial:" + name])
    moved = 0.0
    for name, value in params.items():
        np.testing.assert_allclose(value, want["trained:" + name], rtol=1e-4, atol=2e-5, err_msg=name)
        moved = max(moved, float(np.abs(value - initial[name]).max()))
    assert moved > 0.1                  # training changed the parameters
    assert perplexity[0][0] == EXTRA["lm_perplexity"][0][0] == "perplexity"
    assert perplexity[0][1] == pytest.approx(EXTRA["lm_perplexity"][0][1], rel=1e-5)


def test_names_and_counters_follow_mxnet():
    cell = mx.rnn.LSTMCell(4, prefix="p_")
    assert [s.name for s in cell.begin_state()] == ["p_begin_state_0", "p_begin_state_1"]
    assert [s.name for s in cell.begin_state()] == ["p_begin_state_2", "p_begin_state_3"]
    outs, _ = cell.unroll(2, [mx.sym.Variable("a"), mx.sym.Variable("b")])
    assert [o.name for o in outs] == ["p_t0_out", "p_t1_out"]
    out, _ = cell(mx.sym.Variable("c"), cell.begin_state())
    assert out.name == "p_t2_out"        # the step counter continues until reset/unroll
    cell.reset()
    assert cell(mx.sym.Variable("c"), cell.begin_state())[0].name == "p_t0_out"
    assert cell.state_shape == [(0, 4), (0, 4)]
    assert cell.state_info[0]["__layout__"] == "NC"
    fused = mx.rnn.FusedRNNCell(5, num_layers=2, bidirectional=True, mode="gru")
    assert fused.state_info == [{"shape": (4, 0, 5), "__layout__": "LNC"}]
    assert fused.begin_state(func=mx.sym.Variable)[0].list_attr()["__layout__"] == "LNC"
    assert fused.params.get("parameters").name == "gru_parameters"
    shared = mx.rnn.RNNParams("shared_")
    a, b = mx.rnn.RNNCell(3, prefix="a_", params=shared), mx.rnn.RNNCell(3, prefix="b_", params=shared)
    net = mx.sym.Group(a.unroll(1, [mx.sym.Variable("x")])[0] + b.unroll(1, [mx.sym.Variable("y")])[0])
    assert net.list_arguments() == ["x", "shared_i2h_weight", "shared_i2h_bias", "shared_h2h_weight",
                                    "shared_h2h_bias", "y"]
    assert net.list_outputs() == ["a_t0_out_output", "b_t0_out_output"]


def test_lstm_forget_bias_initializes_through_module():
    cell = mx.rnn.LSTMCell(3, prefix="fb_", forget_bias=1.5)
    outs, _ = cell.unroll(2, mx.sym.Variable("data"), merge_outputs=True)
    mod = mx.mod.Module(outs, label_names=None)
    mod.bind(data_shapes=[("data", (2, 2, 4))])
    mod.init_params(mx.init.Xavier())
    np.testing.assert_array_equal(mod.get_params()[0]["fb_i2h_bias"].asnumpy(),
                                  np.repeat([0, 1.5, 0, 0], 3).astype(np.float32))
    fused = mx.rnn.FusedRNNCell(2, mode="lstm", forget_bias=3.0, prefix="ff_")
    outs, _ = fused.unroll(2, mx.sym.Variable("data"), layout="TNC", merge_outputs=True)
    mod = mx.mod.Module(outs, label_names=None)
    mod.bind(data_shapes=[("data", (2, 2, 4))])
    mod.init_params(mx.init.Xavier())
    biases = fused.unpack_weights(mod.get_params()[0])
    np.testing.assert_array_equal(biases["ff_l0_i2h_f_bias"].asnumpy(), [3.0, 3.0])
    np.testing.assert_array_equal(biases["ff_l0_i2h_i_bias"].asnumpy(), [0.0, 0.0])


def test_mxnet_import_names():
    import onnxsym.compat
    onnxsym.compat.install()
    try:
        import mxnet.rnn
        import mxnet.rnn.io
        import mxnet.rnn.rnn_cell
        assert mxnet.rnn is mx.rnn and mxnet.rnn.io.BucketSentenceIter is mx.rnn.BucketSentenceIter
        assert mxnet.rnn.rnn_cell.ConvLSTMCell is mx.rnn.ConvLSTMCell
    finally:
        onnxsym.compat.uninstall()


@pytest.mark.parametrize("make, match", [
    (lambda: mx.rnn.LSTMCell(3).unroll(2, None), "deprecated"),
    (lambda: mx.rnn.LSTMCell(3).unroll(3, [mx.sym.Variable("a")]), "got 1 input steps"),
    (lambda: mx.rnn.LSTMCell(3).unroll(2, mx.sym.Variable("a"), layout="NC"), "Invalid layout"),
    (lambda: mx.rnn.LSTMCell(3).unroll(2, mx.sym.Group([mx.sym.Variable("a"), mx.sym.Variable("b")]),
                                       merge_outputs=False), "grouped symbol"),
    (lambda: mx.rnn.FusedRNNCell(3, mode="lstmp"), "unknown mode"),
    (lambda: mx.rnn.DropoutCell("0.5"), "must be a number"),
    (lambda: mx.rnn.ZoneoutCell(mx.rnn.FusedRNNCell(3)), "unfuse first"),
    (lambda: mx.rnn.ZoneoutCell(mx.rnn.BidirectionalCell(mx.rnn.RNNCell(2, prefix="l"),
                                                         mx.rnn.RNNCell(2, prefix="r"))), "doesn't support"),
    (lambda: mx.rnn.ConvRNNCell((1, 2, 4, 4), 3, h2h_kernel=(2, 3)), "Only support odd number"),
    (lambda: mx.rnn.LSTMCell(3).unpack_weights({"lstm_i2h_weight": mx.nd.zeros((12, 2))}), "lstm_i2h_bias"),
    (lambda: mx.rnn.FusedRNNCell(3, prefix="q_").unpack_weights({"q_parameters": mx.nd.zeros((7,))}),
     "Invalid parameters size"),
    (lambda: mx.rnn.BucketSentenceIter([[1, 2]], 1, layout="TC"), "Invalid layout"),
    (lambda: mx.rnn.BucketSentenceIter([[1, 2, 3]], 1, buckets=[2]), "no bucket"),
])
def test_bad_use_raises_mxnet_error(make, match):
    with pytest.raises(MXNetError, match=match):
        make()


def test_modified_cell_cannot_be_used_directly():
    base = mx.rnn.RNNCell(3, prefix="m_")
    mx.rnn.ResidualCell(base)
    with pytest.raises(AssertionError, match="modifier cells"):
        base.begin_state()
    with pytest.raises(NotImplementedError, match="cannot be stepped"):
        mx.rnn.FusedRNNCell(3).__call__(mx.sym.Variable("x"), [])


def _rnn_steps(x, w_i, b_i, w_h, b_h):
    """numpy: the tanh RNN's per-step states for inputs x (T, N, I) from zeros."""
    h, states = np.zeros((x.shape[1], w_h.shape[0])), []
    for step in x:
        h = np.tanh(step @ w_i.T + b_i + h @ w_h.T + b_h)
        states.append(h)
    return states


def test_zoneout_and_dropout_cells_in_training():
    """Training mode: each zoned-out output element is the new output or the previous (zoned) one, both occur,
    and the states are untouched (zoneout_states=0); DropoutCell's elements are 0 or x / (1 - p)."""
    rng = np.random.RandomState(2)
    cell = mx.rnn.ZoneoutCell(mx.rnn.RNNCell(6, prefix="zo_"), zoneout_outputs=0.5)
    outs, _ = cell.unroll(3, [mx.sym.Variable("x%d" % t) for t in range(3)])
    net = mx.sym.Group(outs)
    args = {"x%d" % t: rng.uniform(-1, 1, (8, 5)) for t in range(3)}
    args.update(zo_i2h_weight=rng.uniform(-1, 1, (6, 5)), zo_i2h_bias=rng.uniform(-1, 1, 6),
                zo_h2h_weight=rng.uniform(-1, 1, (6, 6)), zo_h2h_bias=rng.uniform(-1, 1, 6))
    ex = net.bind(mx.cpu(), {k: mx.nd.array(v) for k, v in args.items()})
    got = [o.asnumpy() for o in ex.forward(is_train=True)]
    states = _rnn_steps(np.stack([args["x%d" % t] for t in range(3)]), args["zo_i2h_weight"], args["zo_i2h_bias"],
                        args["zo_h2h_weight"], args["zo_h2h_bias"])
    previous, kept = np.zeros_like(states[0]), []
    for out, new in zip(got, states):
        is_new, is_old = np.isclose(out, new, atol=1e-5), np.isclose(out, previous, atol=1e-5)
        assert np.all(is_new | is_old)
        kept.append(is_new & ~is_old)
        previous = out
    kept = np.concatenate(kept)
    assert 0.3 < kept.mean() < 0.7             # p = 0.5 of 144 elements
    drop = mx.rnn.DropoutCell(0.25, prefix="do_")
    outs, _ = drop.unroll(2, mx.sym.Variable("data"), merge_outputs=True)
    x = rng.uniform(1, 2, (50, 2, 4))
    y = outs.bind(mx.cpu(), {"data": mx.nd.array(x)}).forward(is_train=True)[0].asnumpy()
    zero = y == 0
    np.testing.assert_allclose(y[~zero], x[~zero] / 0.75, rtol=1e-6)
    assert 0.15 < zero.mean() < 0.35
