"""Every differentiable op's training graph in float64 and float16 against its float32 one (which
test_gradients.py checks against finite differences): the same gradients, to the precision of the dtype, in the
bound dtype. float16 graphs compute in float32 (onnxsym/lower/dtype_passes.py); float64 ones in float64, with
rewrites where onnxruntime-training 1.19.2 lacks a float64 gradient kernel.

Ops whose float64 kernel the installed ONNX Runtime's CPU provider lacks altogether (forward included) fail with a
clear MXNetError naming the missing kernel: FLOAT64_KERNELS lists what each op needs, a one-node session probes the
runtime, and the missing ones are strict xfails, so a runtime that gains them (or a rewrite here) shows up."""
import functools

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnxsym as mx
from onnxsym.autograd.training import backend
from onnxsym.ops.registry import all_ops
from onnxsym.runtime.ort import create_session
from .opcase import gradient_nodes
from .ort_training_gaps import skip_ort_training_gap
from .test_gradients import GRADIENT_SKIPS, _gradient_cases

# op -> the ONNX kernels its float64 training graph needs that some ONNX Runtime CPU builds lack (1.19.2 lacks
# all of them; 1.32 has Cos, Sin and ReduceProd); whether the installed one has each is probed below
FLOAT64_KERNELS = {
    "Convolution": ["Conv"], "Convolution_v1": ["Conv"], "_npx_convolution": ["Conv"], "Deconvolution": ["ConvTranspose"],
    "UpSampling-bilinear": ["ConvTranspose"], "Pooling": ["AveragePool"], "Pooling_v1": ["AveragePool"],
    "LRN": ["LRN"], "cos": ["Cos", "Sin"], "sin": ["Sin", "Cos"], "prod": ["ReduceProd"], "nanprod": ["ReduceProd"],
}
# (tan, the inverse and hyperbolic trig ops and erf have float64 forms over Sin/Exp/Log/Sqrt: ops/elemwise.py)
# onnxruntime-training's own gradient kernels without float64 versions (that backend only)
ORT_TRAINING_FLOAT64_GAPS = {"Pooling": "MaxPoolGrad", "Pooling_v1": "MaxPoolGrad"}


@functools.lru_cache(maxsize=None)
def has_float64_kernel(op_type):
    """Whether the installed ONNX Runtime's CPU provider runs `op_type` on float64 (a one-node session)."""
    x = helper.make_tensor_value_info("x", TensorProto.DOUBLE, [1, 1, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.DOUBLE, None)
    inputs, attrs, inits = ["x"], {}, []
    if op_type in ("Conv", "ConvTranspose"):
        inits = [numpy_helper.from_array(np.ones((1, 1, 2, 2)), "w")]
        inputs.append("w")
    elif op_type == "AveragePool":
        attrs = {"kernel_shape": [2, 2]}
    elif op_type == "LRN":
        attrs = {"size": 3}
    graph = helper.make_graph([helper.make_node(op_type, inputs, ["y"], **attrs)], "probe", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    try:
        create_session(model)
    except Exception:       # noqa: BLE001 - ORT says NOT_IMPLEMENTED (no kernel) through its own exception types
        return False
    return True


def _float64_gap(name, case):
    kernels = FLOAT64_KERNELS.get(name) or FLOAT64_KERNELS.get("%s-%s" % (name, case.attrs.get("sample_type"))) or []
    if name in ("Pooling", "Pooling_v1") and case.attrs.get("pool_type", "max") == "max":
        kernels = []        # max pooling runs MaxPool, which has float64 kernels; its gradient differs per backend
    missing = [k for k in kernels if not has_float64_kernel(k)]
    if backend() == "ort-training" and name in ORT_TRAINING_FLOAT64_GAPS and \
            case.attrs.get("pool_type", "max") == "max":
        missing.append(ORT_TRAINING_FLOAT64_GAPS[name])
    return " / ".join(missing)


# ops whose dtypes are not the bound ones: an imported ONNX node keeps the types of its graph
FIXED_DTYPES = {"_onnx"}
# op -> why it does not run in float16
FLOAT16_UNSUPPORTED = {"Custom": "float16 Python-op signatures are not among those registered before the first "
                                 "session (ORT_NOTES: a later registration breaks existing sessions)"}
_LINALG = ("gemm", "gemm2", "potrf", "potri", "trmm", "trsm", "syrk", "sumlogdiag", "extractdiag", "makediag",
           "extracttrian", "maketrian", "inverse", "det", "slogdet", "gelqf", "syevd")
FLOAT16_UNSUPPORTED.update(("_linalg_" + name, "MXNet 1.9.1 runs linear algebra on float32 and float64 only "
                            "(la_op.h), and so does onnxsym, with MXNet's error") for name in _LINALG)
TOLERANCE = {"float64": 1e-4, "float16": 3e-2}      # relative to the largest float32 gradient (at least 1)


def _cases():
    params = []
    for name in sorted(all_ops()):
        opcls = all_ops()[name]
        if name in GRADIENT_SKIPS or name in FIXED_DTYPES or opcls.is_loss or not opcls.differentiable:
            continue
        for case in _gradient_cases(name):
            if case.dtype != "float32":
                continue
            for dtype in ("float64", "float16"):
                marks = []
                gap = _float64_gap(name, case) if dtype == "float64" else ""
                if gap:
                    marks.append(pytest.mark.xfail(raises=mx.MXNetError, strict=True,
                                                   reason="ONNX Runtime has no float64 %s kernel" % gap))
                if dtype == "float16" and name in FLOAT16_UNSUPPORTED:
                    marks.append(pytest.mark.xfail(raises=mx.MXNetError, strict=True,
                                                   reason=FLOAT16_UNSUPPORTED[name]))
                params.append(pytest.param(case, dtype, id="%s-%s" % (case, dtype), marks=marks))
    return params


def _types(sym, arrays, dtype):
    """The bound dtype for the float inputs, or (BatchNorm's float32 parameters, ...) for the data input only
    with the others as type inference gives them."""
    names = sym.list_arguments() + sym.list_auxiliary_states()
    floats = {n: dtype for n in sym.list_arguments() if np.issubdtype(arrays[n].dtype, np.floating)}
    for given in (floats, {sym.list_arguments()[0]: dtype}):
        try:
            arg, _, aux = sym.infer_type(**given)
        except mx.MXNetError:
            continue
        if arg is not None:
            return dict(zip(names, list(arg) + list(aux)))
    raise AssertionError("no consistent %s types for %s" % (dtype, sym.list_arguments()))


def _train(case, dtype):
    sym = case.symbol()
    arrays = case.inputs(sym)
    types = _types(sym, arrays, dtype) if dtype != "float32" else {n: a.dtype for n, a in arrays.items()}
    types = {n: (types[n] if np.issubdtype(arrays[n].dtype, np.floating) else arrays[n].dtype) for n in arrays}
    names = gradient_nodes(case, sym)
    args = {n: mx.nd.array(arrays[n], dtype=types[n]) for n in sym.list_arguments()}
    grads = {n: mx.nd.zeros(arrays[n].shape, dtype=types[n]) for n in names}
    aux = {n: mx.nd.array(arrays[n], dtype=types[n]) for n in sym.list_auxiliary_states()}
    exe = sym.bind(mx.cpu(), args=args, args_grad=grads, aux_states=aux)
    outputs = exe.forward(is_train=True)
    rng = np.random.RandomState(1)
    exe.backward([mx.nd.array(rng.uniform(-1, 1, o.shape), dtype=o.dtype) for o in outputs])
    return {n: g for n, g in grads.items()}, types


@pytest.mark.parametrize("case, dtype", _cases())
def test_gradient_in_dtype(case, dtype):
    skip_ort_training_gap(type(case.symbol().outputs[0][0].op).op_name)
    reference, _ = _train(case, "float32")
    got, types = _train(case, dtype)
    for name, grad in got.items():
        assert grad.dtype == np.dtype(types[name]), "d%s is %s, bound as %s" % (name, grad.dtype, types[name])
        want = reference[name].asnumpy().astype(np.float64)
        scale = max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(grad.asnumpy().astype(np.float64), want, rtol=0,
                                   atol=TOLERANCE[dtype] * scale, err_msg="%s d%s" % (dtype, name))


def test_float64_graphs_that_ort_would_fuse_into_float32_only_ops():
    """x * sigmoid(a * x) (ORT fuses it into QuickGelu) and a transposed matrix product (FusedMatMul): ORT's fused
    ops have float32 kernels only; float64 graphs run and train without them, with numpy's numbers."""
    x, w = mx.sym.Variable("x"), mx.sym.Variable("w")
    sym = mx.sym.Group([x * mx.sym.sigmoid(x * 2.0), mx.sym.dot(mx.sym.transpose(w), x)])
    values = {"x": np.linspace(-1, 1, 12).reshape(3, 4), "w": np.arange(6.0).reshape(3, 2) / 7}
    exe = sym.simple_bind(mx.cpu(), x=(3, 4), w=(3, 2), type_dict={"x": "float64", "w": "float64"})
    for name, value in values.items():
        exe.arg_dict[name][:] = value
    s = 1 / (1 + np.exp(-2 * values["x"]))
    outputs = exe.forward()
    np.testing.assert_allclose(outputs[0].asnumpy(), values["x"] * s, rtol=1e-12)
    np.testing.assert_allclose(outputs[1].asnumpy(), values["w"].T @ values["x"], rtol=1e-12)
    exe.forward(is_train=True)
    heads = [np.ones((3, 4)), np.ones((2, 4))]
    exe.backward([mx.nd.array(h, dtype="float64") for h in heads])
    dx = s + 2 * values["x"] * s * (1 - s) + values["w"] @ heads[1]
    np.testing.assert_allclose(exe.grad_dict["x"].asnumpy(), dx, rtol=1e-12)
    np.testing.assert_allclose(exe.grad_dict["w"].asnumpy(), values["x"] @ heads[1].T, rtol=1e-12)
    assert exe.grad_dict["x"].dtype == np.float64
