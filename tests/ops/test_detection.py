"""Detection contrib ops (_contrib_box_iou, bipartite_matching, box_encode, box_decode, MultiBoxPrior,
MultiBoxTarget, MultiBoxDetection, Proposal, MultiProposal) against MXNet 1.9.1: forward outputs and input
gradients recorded by tests/fixtures/make_detection_fixtures.py over several parameter settings and every dtype
MXNet accepts, MXNet's docstring examples, and the errors for inputs MXNet refuses."""
import json
import os

import numpy as np
import pytest

import onnxsym as mx
from onnxsym.base import MXNetError
from .opcase import OpCase, run_case

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures", "mxnet")


with open(os.path.join(FIXTURES, "detection.json")) as _handle:
    RECORDED = json.load(_handle)


def _load():
    metas = RECORDED["cases"]
    arrays = np.load(os.path.join(FIXTURES, "detection.npz"))
    cases = {}
    for meta in metas:
        prefix = meta["name"] + "/"
        cases[meta["name"]] = (meta, {k[len(prefix):]: arrays[k] for k in arrays.files if k.startswith(prefix)})
    return cases


FIXTURE = _load()
# float16 runs in float32 and rounds once; MXNet rounds each float16 step (box_iou, box_encode, box_decode)
TOLERANCE = {"float16": dict(rtol=1e-2, atol=2e-3), "float32": dict(rtol=1e-5, atol=1e-6),
             "float64": dict(rtol=1e-12, atol=1e-12)}


def _case(name):
    meta, arrays = FIXTURE[name]
    values = {k: arrays["in:" + k] for k in meta["inputs"]}
    outputs = [arrays["out:%d" % i] for i in range(len(meta["out_shapes"]))]
    return OpCase(meta["op"], dict(meta["attrs"]), {k: v.shape for k, v in values.items()},
                  lambda **_: outputs, values=values, dtype=meta["dtype"], name="mxnet-" + name,
                  **TOLERANCE[meta["dtype"]])


CASES = [_case(name) for name in sorted(FIXTURE)]     # also the cases of tests/ops/test_gradients.py (zeros)


@pytest.mark.parametrize("case", CASES, ids=str)
def test_forward_matches_mxnet(case):
    run_case(case)


@pytest.mark.parametrize("name", sorted(FIXTURE), ids=str)
def test_gradient_matches_mxnet(name):
    """MXNet back-propagates zeros through all of these ops (seeded head gradients, bound gradients of ones)."""
    meta, arrays = FIXTURE[name]
    sym = getattr(mx.sym.contrib, meta["op"][len("_contrib_"):])(
        **{k: mx.sym.var(k) for k in meta["inputs"]}, **meta["attrs"])
    args = {k: mx.nd.array(arrays["in:" + k], dtype=meta["dtype"]) for k in meta["inputs"]}
    grads = {k: mx.nd.ones(v.shape, dtype=meta["dtype"]) for k, v in args.items()}
    exe = sym.bind(mx.cpu(), args=args, args_grad=grads)
    exe.forward(is_train=True)
    heads = [arrays["head:%d" % i] for i in range(len(sym.list_outputs()))]
    exe.backward([mx.nd.array(h, dtype=h.dtype) for h in heads])
    for key, grad in grads.items():
        expected = arrays["grad:" + key]
        if meta["op"] == "_contrib_MultiBoxTarget" and key != "cls_pred":
            # MXNet's Backward writes only cls_pred's gradient and leaves the others as they were (ones here);
            # onnxsym writes their zero gradient
            expected = np.zeros_like(expected)
        np.testing.assert_array_equal(grad.asnumpy(), expected, err_msg=key)


def test_every_op_has_a_recorded_case():
    ops = {meta["op"] for meta, _ in FIXTURE.values()}
    assert ops == {"_contrib_box_iou", "_contrib_bipartite_matching", "_contrib_box_encode", "_contrib_box_decode",
                   "_contrib_MultiBoxPrior", "_contrib_MultiBoxTarget", "_contrib_MultiBoxDetection",
                   "_contrib_Proposal", "_contrib_MultiProposal"}


# ---------------------------------------------------------------- MXNet's documented examples
def test_box_iou_docstring():
    x = mx.nd.array([[0.5, 0.5, 1.0, 1.0], [0.0, 0.0, 0.5, 0.5]])
    y = mx.nd.array([[0.25, 0.25, 0.75, 0.75]])
    np.testing.assert_allclose(mx.nd.contrib.box_iou(x, y, format="corner").asnumpy(), [[1 / 7], [1 / 7]],
                               rtol=1e-6)


def test_bipartite_matching_docstring():
    s = mx.nd.array([[0.5, 0.6], [0.1, 0.2], [0.3, 0.4]])
    x, y = mx.nd.contrib.bipartite_matching(s, threshold=1e-12, is_ascend=False)
    np.testing.assert_array_equal(x.asnumpy(), [1, -1, 0])
    np.testing.assert_array_equal(y.asnumpy(), [2, 0])


def test_multibox_prior_numpy():
    """Anchors of one cell from MXNet's formula: sizes with the first ratio, then the other ratios."""
    out = mx.nd.contrib.MultiBoxPrior(mx.nd.zeros((1, 1, 2, 4)), sizes=(0.5, 0.25), ratios=(1, 4)).asnumpy()
    assert out.shape == (1, 2 * 4 * 3, 4)
    cell = out[0].reshape(2, 4, 3, 4)[1, 2]
    cx, cy = (2 + 0.5) / 4, (1 + 0.5) / 2
    halves = [(0.5 * 2 / 4 / 2, 0.5 / 2), (0.25 * 2 / 4 / 2, 0.25 / 2), (0.5 * 2 / 4 * 2 / 2, 0.5 / 2 / 2)]
    expected = [[cx - w, cy - h, cx + w, cy + h] for w, h in halves]
    np.testing.assert_allclose(cell, expected, rtol=1e-6)


def test_aliases_and_namespaces():
    data = mx.sym.var("data")
    for name in ("_contrib_MultiBoxPrior", "_npx_multibox_prior"):
        assert getattr(mx.sym, name)(data, sizes=(0.5,)).infer_shape(data=(1, 3, 2, 2))[1] == [(1, 4, 4)]
    assert mx.sym.contrib.MultiBoxDetection is not None and mx.nd.contrib.MultiProposal is not None
    out = mx.sym.contrib.Proposal(mx.sym.var("c"), mx.sym.var("b"), mx.sym.var("i"), output_score=True)
    assert out.list_outputs() == [out.name + "_output", out.name + "_score"]
    target = mx.sym.contrib.MultiBoxTarget(mx.sym.var("a"), mx.sym.var("l"), mx.sym.var("p"), name="t")
    assert target.list_outputs() == ["t_loc_target", "t_loc_mask", "t_cls_target"]
    assert target.list_arguments() == ["a", "l", "p"]


def test_mxnet_json_round_trip():
    """MXNet's JSON of an SSD head (Tuple<float> attributes written as "[0.75, 0.5, 0.25]") loads, runs, and is
    written back as MXNet wrote it."""
    text = RECORDED["ssd_graph"]
    loaded = mx.sym.load_json(text)
    assert json.loads(loaded.tojson())["nodes"] == json.loads(text)["nodes"]
    prior = mx.sym.contrib.MultiBoxPrior(mx.sym.var("data"), sizes=[0.75, 0.5, 0.25], ratios=(1, 2, 0.5), clip=True,
                                         name="prior")
    built = mx.sym.contrib.MultiBoxDetection(mx.sym.var("cls_prob"), mx.sym.var("loc_pred"), prior,
                                             variances=(0.1, 0.1, 0.2, 0.2), nms_topk=5, name="det")
    assert json.loads(built.tojson())["nodes"] == json.loads(text)["nodes"]
    rng = np.random.RandomState(3)
    args = {"data": mx.nd.zeros((1, 3, 2, 3)), "cls_prob": mx.nd.array(rng.uniform(0, 1, (2, 3, 30))),
            "loc_pred": mx.nd.array(rng.uniform(-1, 1, (2, 120)))}
    out = loaded.bind(mx.cpu(), args=args).forward()[0].asnumpy()
    assert out.shape == (2, 30, 6)
    np.testing.assert_array_equal(out, built.bind(mx.cpu(), args=args).forward()[0].asnumpy())
    assert (out[:, 5:, 0] == -1).all()                  # nms_topk=5: the rows after the first 5 get class -1


def test_proposal_fills_input_shapes():
    sym = mx.sym.contrib.MultiProposal(mx.sym.var("cls"), mx.sym.var("bbox"), mx.sym.var("info"),
                                       rpn_post_nms_top_n=7)
    args, outs, _ = sym.infer_shape(cls=(2, 24, 3, 4))
    assert args == [(2, 24, 3, 4), (2, 48, 3, 4), (2, 3)]
    assert outs == [(14, 5)]


# ---------------------------------------------------------------- refused inputs
ERRORS = [
    (lambda: mx.nd.contrib.box_iou(mx.nd.zeros((2, 3)), mx.nd.zeros((2, 4))), "last dimension of lhs"),
    (lambda: mx.nd.contrib.box_iou(mx.nd.zeros((4,)), mx.nd.zeros((2, 4))), "dim >= 2"),
    (lambda: mx.nd.contrib.bipartite_matching(mx.nd.zeros((3,)), threshold=0.5), "dim >= 2"),
    (lambda: mx.nd.contrib.bipartite_matching(mx.nd.zeros((3, 2))), "threshold"),
    (lambda: mx.nd.contrib.box_decode(mx.nd.zeros((1, 2, 3)), mx.nd.zeros((1, 2, 4))), "data must have shape"),
    (lambda: mx.nd.contrib.box_decode(mx.nd.zeros((1, 2, 4)), mx.nd.zeros((1, 3, 4))), "must hold 2 boxes"),
    (lambda: mx.nd.contrib.box_encode(*(mx.nd.zeros(s) for s in ((1, 2), (1, 2), (1, 2, 4), (1, 3, 4), (3,), (4,)))),
     "means must have shape"),
    (lambda: mx.nd.contrib.MultiBoxPrior(mx.nd.zeros((1, 3, 4)), sizes=(0.5,)), "4D"),
    (lambda: mx.nd.contrib.MultiBoxPrior(mx.nd.zeros((1, 3, 4, 4)), steps=(0.1,)), "Step ndim must be 2"),
    (lambda: mx.nd.contrib.MultiBoxPrior(mx.nd.zeros((1, 3, 4, 4)), offsets=(0.5, 1.5)), "offsets"),
    (lambda: mx.nd.contrib.MultiBoxPrior(mx.nd.zeros((1, 3, 4, 4)), sizes="(a, b)"), "sizes"),
    (lambda: mx.nd.contrib.MultiBoxPrior(mx.nd.zeros((1, 3, 4, 4), dtype="float64")), "Unsupported data type"),
    (lambda: mx.nd.contrib.MultiBoxTarget(mx.nd.zeros((1, 4, 4)), mx.nd.zeros((1, 2, 4)), mx.nd.zeros((1, 3, 4))),
     "label must have shape"),
    (lambda: mx.nd.contrib.MultiBoxTarget(mx.nd.zeros((1, 4, 4)), mx.nd.zeros((1, 2, 5)), mx.nd.zeros((1, 3, 4)),
                                          variances=(0.1, 0.2)), "variances"),
    (lambda: mx.nd.contrib.MultiBoxDetection(mx.nd.zeros((1, 3, 4)), mx.nd.zeros((1, 12)), mx.nd.zeros((1, 4, 4))),
     "# anchors mismatch"),
    (lambda: mx.nd.contrib.MultiBoxDetection(*(mx.nd.zeros(s, dtype="float16") for s in ((1, 3, 4), (1, 16),
                                                                                          (1, 4, 4)))),
     "Unsupported data type"),
    (lambda: mx.nd.contrib.Proposal(mx.nd.zeros((2, 24, 3, 3)), mx.nd.zeros((2, 48, 3, 3)), mx.nd.zeros((2, 3))),
     "multiple images"),
    (lambda: mx.nd.contrib.MultiProposal(mx.nd.zeros((1, 24, 3, 3)), mx.nd.zeros((1, 48, 3, 3)), mx.nd.zeros((1, 3)),
                                         rpn_post_nms_top_n=-1), "rpn_post_nms_top_n must be >= 1"),
    (lambda: mx.nd.contrib.MultiProposal(mx.nd.zeros((1, 20, 3, 3)), mx.nd.zeros((1, 40, 3, 3)),
                                         mx.nd.zeros((1, 3))), "channels"),
    (lambda: mx.nd.contrib.MultiProposal(*(mx.nd.zeros(s, dtype="float64") for s in ((1, 24, 3, 3), (1, 48, 3, 3),
                                                                                     (1, 3)))),
     "Unsupported data type"),
]


@pytest.mark.parametrize("call, words", ERRORS, ids=[w for _, w in ERRORS])
def test_refused_inputs(call, words):
    with pytest.raises(MXNetError, match=words):
        call()
