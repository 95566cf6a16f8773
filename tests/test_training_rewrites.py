"""Training rewrites of imported Resize, GridSample and RoiAlign nodes (onnxsym/ops/onnx_training.py): the
training-mode forward equals ONNX Runtime's on the original node, and the gradients with respect to the data
inputs (X, grid) equal float64 central differences; roi, scales, sizes and boxes are settings (zero gradient).
Each case is written in ONNX's backend test layout and checked by the conformance harness's gradient check."""
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxsym as mx
from tests.onnx_conformance import run_gradient_case

F, I = np.float32, np.int64


def _case(folder, op_type, inputs, attrs, opset):
    """Writes a single-node case (model.onnx, test_data_set_0 with ORT's outputs) and returns its folder."""
    names = [n if v is not None else "" for n, v in inputs]
    node = helper.make_node(op_type, names, ["Y"], **attrs)
    given = [(n, v) for n, v in inputs if v is not None]
    graph = helper.make_graph([node], "case", [helper.make_tensor_value_info(
        n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape) for n, v in given],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9
    feeds = dict(given)
    outputs = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    del model.graph.output[:]       # the output shape declared, as ONNX's cases do (scales decide it at run time)
    model.graph.output.append(helper.make_tensor_value_info("Y", TensorProto.FLOAT, outputs[0].shape))
    os.makedirs(os.path.join(folder, "test_data_set_0"))
    onnx.save(model, os.path.join(folder, "model.onnx"))
    for kind, values in (("input", [v for _, v in given]), ("output", outputs)):
        for i, v in enumerate(values):
            with open(os.path.join(folder, "test_data_set_0", "%s_%d.pb" % (kind, i)), "wb") as f:
                f.write(numpy_helper.from_array(v).SerializeToString())
    return folder


def _x(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(F)


def _resize(scales=None, sizes=None, roi=None, shape=(1, 2, 7, 9), **attrs):
    inputs = [("X", _x(*shape)), ("roi", None if roi is None else np.array(roi, F)),
              ("scales", None if scales is None else np.array(scales, F))]
    if sizes is not None:
        inputs.append(("sizes", np.array(sizes, I)))
    return "Resize", inputs, attrs, 19


def _grid_sample(x_shape, grid_shape, **attrs):
    grid = np.random.default_rng(1).uniform(-1.3, 1.3, grid_shape).astype(F)
    return "GridSample", [("X", _x(*x_shape)), ("grid", grid)], attrs, 20


def _roi_align(rois, **attrs):
    rois = np.array(rois, F)
    return "RoiAlign", [("X", _x(2, 2, 8, 10)), ("rois", rois), ("batch_indices", np.arange(len(rois)) % 2)], \
        attrs, 16


CASES = {
    # Resize: antialias (item 1), then every attribute the rewrite reads
    "resize_linear_antialias_scales": _resize(scales=[1, 1, 0.6, 0.4], mode="linear", antialias=1),
    "resize_cubic_antialias_sizes": _resize(sizes=[1, 2, 3, 4], mode="cubic", antialias=1),
    "resize_cubic_antialias_exclude_outside_a": _resize(sizes=[1, 2, 4, 3], mode="cubic", antialias=1,
                                                        exclude_outside=1, cubic_coeff_a=-0.5),
    "resize_linear_antialias_align_corners": _resize(sizes=[1, 2, 3, 5], mode="linear", antialias=1,
                                                     coordinate_transformation_mode="align_corners"),
    "resize_linear_antialias_upsample": _resize(scales=[1, 1, 1.5, 0.5], mode="linear", antialias=1),
    "resize_linear_antialias_axes": _resize(scales=[0.3, 0.5], mode="linear", antialias=1, axes=[3, 2]),
    "resize_cubic_half_pixel_symmetric": _resize(scales=[1, 1, 1.7, 0.6], mode="cubic",
                                                 coordinate_transformation_mode="half_pixel_symmetric"),
    "resize_linear_tf_crop_and_resize": _resize(
        sizes=[5, 6], roi=[0.3, -0.2, 0.9, 1.1], mode="linear", axes=[2, 3], extrapolation_value=2.5,
        coordinate_transformation_mode="tf_crop_and_resize"),
    "resize_cubic_tf_crop_and_resize": _resize(
        sizes=[1, 2, 5, 6], roi=[0, 0, 0.1, 0.2, 1, 1, 0.8, 0.7], mode="cubic",
        coordinate_transformation_mode="tf_crop_and_resize"),
    "resize_nearest_axes_scales": _resize(scales=[2.0, 1.5], mode="nearest", axes=[3, 2]),
    "resize_nearest_ceil_asymmetric": _resize(scales=[1, 1, 1.6, 0.7], mode="nearest", nearest_mode="ceil",
                                              coordinate_transformation_mode="asymmetric"),
    "resize_linear_not_smaller": _resize(sizes=[4, 4], mode="linear", axes=[2, 3], antialias=1,
                                         keep_aspect_ratio_policy="not_smaller"),
    "resize_linear_not_larger": _resize(sizes=[4, 4], mode="linear", axes=[2, 3],
                                        keep_aspect_ratio_policy="not_larger"),
    "resize_same_size_scale": _resize(scales=[1, 1, 1.2, 2.0], shape=(1, 1, 4, 5), mode="linear"),
    "resize_same_shape_copies": _resize(scales=[1, 1, 1.2, 1.0], shape=(1, 1, 4, 5), mode="linear"),
    # GridSample: opset-20 names, volumetric, every padding mode
    **{"gridsample_%s_%s_%dd_align%d" % (mode, padding, rank, align): _grid_sample(
        (1, 2) + (4, 5, 3)[:rank], (1,) + (3, 2, 4)[:rank] + (rank,), mode=mode, padding_mode=padding,
        align_corners=align)
       for mode, ranks in (("linear", (2, 3)), ("nearest", (2, 3)), ("cubic", (2,)))
       for rank in ranks for padding in ("zeros", "border", "reflection") for align in (0, 1)},
    # RoiAlign max: fixed and adaptive sampling, boxes reaching outside the image
    "roialign_max_ratio2": _roi_align([[0, 0, 6, 5], [2.2, 1.5, 9.7, 7.1], [-3, -2, 4, 12]], mode="max",
                                      output_height=3, output_width=2, sampling_ratio=2,
                                      coordinate_transformation_mode="output_half_pixel"),
    "roialign_max_adaptive": _roi_align([[0, 0, 6, 5], [2.2, 1.5, 9.7, 7.1], [-3, -2, 14, 12], [1, 1, 1.5, 1.2]],
                                        mode="max", output_height=2, output_width=3, spatial_scale=0.8),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_training_rewrite(name, tmp_path):
    folder = _case(str(tmp_path / name), *CASES[name])
    _, _, outcome, detail = run_gradient_case(folder)
    assert outcome == "pass", detail


def test_resize_antialias_with_tf_crop_and_resize_is_refused(tmp_path):
    """The filter width would depend on the run-time roi: a clear error, not a silently different forward."""
    op_type, inputs, attrs, opset = _resize(sizes=[1, 2, 3, 4], roi=[0, 0, 0, 0, 1, 1, 1, 1], mode="linear",
                                            antialias=1, coordinate_transformation_mode="tf_crop_and_resize")
    folder = _case(str(tmp_path / "case"), op_type, inputs, attrs, opset)
    sym, args, auxs = mx.onnx.import_model(os.path.join(folder, "model.onnx"))
    feeds = {n: mx.nd.NDArray(v) for n, v in inputs if v is not None}
    grads = {"X": mx.nd.NDArray(np.zeros_like(inputs[0][1]))}
    exe = sym.bind(mx.cpu(), args={**args, **feeds}, args_grad=grads, aux_states=auxs,
                   grad_req={n: "write" if n in grads else "null" for n in sym.list_arguments()})
    with pytest.raises(mx.base.MXNetError, match="antialias with tf_crop_and_resize"):
        exe.forward(is_train=True)
