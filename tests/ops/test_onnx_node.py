"""`_onnx`: ONNX nodes kept as they are (imported models) run, infer and differentiate like native ops."""
import base64
import json

import numpy as np
import pytest
from onnx import helper

import onnxsym as mx
from onnxsym.lower.to_onnx import lower_symbol

from .opcase import OpCase, run_case


def onnx_attrs(op_type, inputs, out_shapes, out_types=("float32",), **attributes):
    holder = helper.make_node(op_type, [], [], **attributes)
    return dict(op_type=op_type, node_attributes=base64.b64encode(holder.SerializeToString()).decode(),
                input_slots="1" * inputs, output_count=len(out_shapes), out_shapes=json.dumps(out_shapes),
                out_types=json.dumps(list(out_types) * len(out_shapes)))


CASES = [
    OpCase("_onnx", onnx_attrs("Tanh", 1, [[2, 3]]), {"input0": (2, 3)}, lambda input0: np.tanh(input0)),
    OpCase("_onnx", onnx_attrs("Gemm", 3, [[2, 4]], transB=1, alpha=0.5), {"input0": (2, 3), "input1": (4, 3),
                                                                           "input2": (4,)},
           lambda input0, input1, input2: 0.5 * input0 @ input1.T + input2),
    OpCase("_onnx", onnx_attrs("LeakyRelu", 1, [[5]], alpha=0.2), {"input0": (5,)},
           lambda input0: np.where(input0 > 0, input0, 0.2 * input0)),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_forward(case):
    run_case(case)


def _lowered_op_types(attrs, shapes, training, gradients="onnxsym"):
    names = ["input%d" % i for i in range(len(shapes))]
    sym = mx.sym.create_symbol("_onnx", *[mx.sym.Variable(n) for n in names], **attrs)
    lowered = lower_symbol(sym, dict(zip(names, shapes)), {n: np.float32 for n in names}, training=training,
                           gradients=gradients)
    return {node.op_type for node in lowered.model.graph.node}


def test_training_rules_apply_to_training_graphs_only():
    """Inference keeps the ONNX node itself; training graphs for onnxruntime-training's builders use its rule
    (ops/onnx_training.py); onnxsym's own AD differentiates the node itself unless it has no VJP rule (LSTM)."""
    power = onnx_attrs("Pow", 2, [[2, 3]])
    assert "Pow" in _lowered_op_types(power, [(2, 3), (2, 3)], training=False)
    assert "ATen" in _lowered_op_types(power, [(2, 3), (2, 3)], training=True,
                                       gradients="ort-training")                          # with_gradient's stops
    # (and reads its inputs directly: the Identity after each input is for ORT's gradient builder only)
    assert _lowered_op_types(power, [(2, 3), (2, 3)], training=True) == {"Pow"}
    assert _lowered_op_types(power, [(2, 3), (2, 3)], training=True, gradients="ort-training") >= {"Identity"}
    lstm = onnx_attrs("LSTM", 3, [[2, 1, 1, 3]], hidden_size=3)
    shapes = [(2, 1, 4), (1, 12, 4), (1, 12, 3)]
    assert "LSTM" in _lowered_op_types(lstm, shapes, training=False)
    for gradients in ("onnxsym", "ort-training"):
        assert "LSTM" not in _lowered_op_types(lstm, shapes, training=True, gradients=gradients)   # unrolled
