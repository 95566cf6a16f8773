"""Training rewrite of imported DeformConv nodes (onnxsym/ops/onnx_training.py): the training-mode forward equals
ONNX Runtime's on the original node, and the gradients with respect to X, W, offset, B and mask equal float64
central differences (the conformance harness's gradient check on a case written in ONNX's backend test layout)."""
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import onnxsym as mx
from tests.onnx_conformance import run_gradient_case
from tests.test_training_rewrites import _case

F = np.float32


def _ort_runs_deform_conv():
    node = helper.make_node("DeformConv", ["X", "W", "offset"], ["Y"], kernel_shape=[1, 1])
    graph = helper.make_graph([node], "probe", [
        helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 1, 2, 2]),
        helper.make_tensor_value_info("W", TensorProto.FLOAT, [1, 1, 1, 1]),
        helper.make_tensor_value_info("offset", TensorProto.FLOAT, [1, 2, 2, 2])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)], ir_version=9)
    try:
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception:  # noqa: BLE001 - NOT_IMPLEMENTED: no kernel in this onnxruntime (1.23 has none)
        return False
    return True


pytestmark = pytest.mark.skipif(not _ort_runs_deform_conv(), reason="this onnxruntime has no DeformConv kernel")


def _deform(x_shape, w_shape, kernel, offset_group=1, spread=1.5, bias=False, mask=False, seed=0, **attrs):
    """(op type, inputs, attributes, opset) of a DeformConv; offsets uniform in [-spread, spread] pixels."""
    rng = np.random.default_rng(seed)
    n, taps = x_shape[0], int(np.prod(kernel))
    pads, strides = attrs.get("pads", [0] * 4), attrs.get("strides", [1, 1])
    dilations = attrs.get("dilations", [1, 1])
    out_spatial = [(x_shape[2 + d] + pads[d] + pads[2 + d] - dilations[d] * (kernel[d] - 1) - 1) // strides[d] + 1
                   for d in range(2)]
    inputs = [("X", rng.standard_normal(x_shape).astype(F)), ("W", rng.standard_normal(w_shape).astype(F)),
              ("offset", rng.uniform(-spread, spread, (n, offset_group * taps * 2, *out_spatial)).astype(F)),
              ("B", rng.standard_normal(w_shape[0]).astype(F) if bias else None)]
    if mask:
        inputs.append(("mask", rng.uniform(0.1, 1.0, (n, offset_group * taps, *out_spatial)).astype(F)))
    attrs = dict(kernel_shape=list(kernel), **attrs)
    if offset_group != 1:
        attrs["offset_group"] = offset_group
    return "DeformConv", inputs, attrs, 19


CASES = {
    "basic_3x3": _deform((1, 1, 5, 5), (1, 1, 3, 3), (3, 3), spread=0.8),
    # offsets of up to 4 pixels on a 4x5 image: many taps fall partly or wholly outside it (read as 0)
    "offsets_outside_image": _deform((2, 2, 4, 5), (3, 2, 2, 2), (2, 2), spread=4.0, bias=True),
    "strides_dilations_pads": _deform((1, 2, 7, 8), (2, 2, 2, 3), (2, 3), spread=2.0, bias=True,
                                      strides=[2, 3], dilations=[2, 1], pads=[1, 0, 2, 1]),
    "groups_offset_groups_mask_bias": _deform((2, 4, 5, 6), (6, 2, 3, 2), (3, 2), offset_group=2,
                                              bias=True, mask=True, group=2, pads=[1, 0, 1, 0]),
    "groups_one_offset_group": _deform((1, 4, 5, 5), (4, 2, 2, 2), (2, 2), group=2, mask=True),
    "offset_group_per_channel": _deform((1, 4, 4, 4), (2, 4, 3, 3), (3, 3), offset_group=4, mask=True,
                                        spread=2.5, pads=[0, 1, 1, 0], dilations=[1, 2], strides=[1, 1]),
    "mask_without_bias": _deform((1, 3, 6, 5), (2, 3, 2, 2), (2, 2), mask=True, strides=[2, 2]),
}


def _bound(folder, inputs, grad_names=()):
    sym, args, auxs = mx.onnx.import_model(os.path.join(folder, "model.onnx"))
    feeds = {n: mx.nd.NDArray(v) for n, v in inputs if v is not None}
    grads = {n: mx.nd.NDArray(np.zeros_like(feeds[n].asnumpy())) for n in grad_names}
    return sym.bind(mx.cpu(), args={**args, **feeds}, args_grad=grads or None, aux_states=auxs,
                    grad_req={n: "write" if n in grads else "null" for n in sym.list_arguments()})


@pytest.mark.parametrize("name", sorted(CASES))
def test_forward_equals_onnxruntime(name, tmp_path):
    """float32, training mode (the rewrite) against ORT's DeformConv kernel on the original node."""
    op_type, inputs, attrs, opset = CASES[name]
    folder = _case(str(tmp_path / name), op_type, inputs, attrs, opset)
    theirs = onnx.numpy_helper.to_array(onnx.load_tensor(os.path.join(folder, "test_data_set_0", "output_0.pb")))
    grad_names = [n for n, v in inputs if v is not None]
    ours = _bound(folder, inputs, grad_names).forward(is_train=True)[0].asnumpy()
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradients_equal_differences(name, tmp_path):
    """X, W, offset, B and mask against float64 central differences of ORT's kernel."""
    folder = _case(str(tmp_path / name), *CASES[name])
    _, _, outcome, detail = run_gradient_case(folder)
    assert outcome == "pass", detail


def test_deform_conv_3d_is_refused(tmp_path):
    """Only 2-D DeformConv has a training rule: other ranks raise a clear error, not a wrong graph."""
    shapes = {"X": (1, 1, 3, 3, 3), "W": (1, 1, 2, 2, 2), "offset": (1, 24, 2, 2, 2)}
    node = helper.make_node("DeformConv", list(shapes), ["Y"], kernel_shape=[2, 2, 2])
    graph = helper.make_graph([node], "case", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s)
                                               for n, s in shapes.items()],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, (1, 1, 2, 2, 2))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    os.makedirs(tmp_path / "case")
    onnx.save(model, str(tmp_path / "case" / "model.onnx"))
    inputs = [(n, np.ones(s, F)) for n, s in shapes.items()]
    exe = _bound(str(tmp_path / "case"), inputs, ["X"])
    with pytest.raises(mx.base.MXNetError, match="2-D DeformConv only"):
        exe.forward(is_train=True)


def test_inference_keeps_the_original_node(tmp_path):
    """Outside training the imported node runs as ORT's DeformConv (the same numbers as above)."""
    op_type, inputs, attrs, opset = CASES["groups_offset_groups_mask_bias"]
    folder = _case(str(tmp_path / "case"), op_type, inputs, attrs, opset)
    feeds = {n: v for n, v in inputs if v is not None}
    theirs = ort.InferenceSession(os.path.join(folder, "model.onnx"),
                                  providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    ours = _bound(folder, inputs).forward(is_train=False)[0].asnumpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)
