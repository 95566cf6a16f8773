"""OnnxCase: one ONNX node imported as an `_onnx` op, and the check that every float input's gradient is the
derivative of the node, by central finite differences in float64 of onnx's own reference implementation
(`onnx.reference.ReferenceEvaluator`), independent of ONNX Runtime and of onnxsym.

The node is written into a one-node model (checked inputs as graph inputs, the others as initializers so that
shape inference sees their values), saved and imported with `mx.onnx.import_model`, bound with a gradient array for
each checked input, run with `forward(is_train=True)` and `backward(projection)`. The training forward must equal the
reference too (a gradient fix must never change the values).
"""
import dataclasses
import os
import tempfile

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import onnxsym as mx
from onnxsym.test_utils import assert_almost_equal, random_projection

OPSET = 17


@dataclasses.dataclass
class OnnxCase:
    op_type: str
    inputs: list                      # [(name, spec)]: a shape (random floats), given values, or None (absent)
    attrs: dict = dataclasses.field(default_factory=dict)
    outputs: int = 1
    exclude: dict = dataclasses.field(default_factory=dict)   # float input -> why its gradient is not checked
    float64: bool = True              # ORT has float64 kernels for the op and its gradient
    low: float = -1.0
    high: float = 1.0
    ranges: dict = dataclasses.field(default_factory=dict)    # input -> (low, high)
    skip_outputs: tuple = ()          # outputs that are not differentiable (indices, masks)
    fixed_dtype: tuple = ()           # given float arrays that keep their own dtype (Resize scales)
    reference: object = None          # reference(**float64 arrays) -> outputs where onnx's has a bug, or "onnxsym"
    name: str = ""
    seed: int = 0

    def __str__(self):
        return self.name or self.op_type

    def arrays(self, dtype):
        rng = np.random.RandomState(self.seed)
        out = {}
        for name, spec in self.inputs:
            if spec is None:
                continue
            if isinstance(spec, tuple):
                low, high = self.ranges.get(name, (self.low, self.high))
                out[name] = rng.uniform(low, high, size=spec).astype(dtype)
            else:
                array = np.asarray(spec)
                floating = np.issubdtype(array.dtype, np.floating) and name not in self.fixed_dtype
                out[name] = array.astype(dtype) if floating else array
        return out

    def checked(self):
        """The float inputs whose gradient is checked."""
        return [n for n, s in self.inputs if s is not None and (isinstance(s, tuple) or np.issubdtype(
            np.asarray(s).dtype, np.floating)) and n not in self.exclude]

    def model(self, dtype):
        arrays = self.arrays(dtype)
        floats = set(self.checked())
        node = helper.make_node(self.op_type, [n if s is not None else "" for n, s in self.inputs],
                                ["out%d" % i for i in range(self.outputs)], **self.attrs)
        inputs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(arrays[n].dtype),
                                                arrays[n].shape) for n in arrays if n in floats]
        inits = [numpy_helper.from_array(arrays[n], n) for n in arrays if n not in floats]
        outs = [helper.make_tensor_value_info("out%d" % i, onnx.TensorProto.UNDEFINED, None)
                for i in range(self.outputs)]
        graph = helper.make_graph([node], self.op_type, inputs, outs, inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True).graph
        known = {v.name: v for v in list(inferred.value_info) + list(inferred.output) if v.type.tensor_type.elem_type}
        del model.graph.output[:]
        model.graph.output.extend(known["out%d" % i] for i in range(self.outputs))
        return model, arrays


def _evaluator(case, model, arrays):
    """feeds -> outputs of the float64 reference: onnx's ReferenceEvaluator, the case's own function, or (for
    features the ReferenceEvaluator ignores, "onnxsym") onnxsym's float64 forward, whose float32 values the case
    checks against ONNX Runtime's own kernel."""
    if case.reference == "onnxsym":
        return _onnxsym_evaluator(model, arrays)
    if case.reference is not None:
        constants = {n: a for n, a in arrays.items()}
        return lambda feeds: [np.asarray(o) for o in case.reference(**{**constants, **feeds})]
    session = ReferenceEvaluator(model)
    return lambda feeds: [np.asarray(o) for o in session.run(None, feeds)]


def _onnxsym_evaluator(model, arrays):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "reference.onnx")
        onnx.save(model, path)
        sym, params, _ = mx.onnx.import_model(path)
    bound = {n: mx.nd.NDArray(np.array(arrays[n], order="C")) if n in arrays else p for n, p in params.items()}
    bound.update({n: mx.nd.NDArray(np.array(arrays[n], order="C")) for n in sym.list_arguments() if n in arrays})
    exe = sym.bind(mx.cpu(), args=bound)

    def evaluate(feeds):
        for name, value in feeds.items():
            exe.arg_dict[name][:] = value
        return [o.asnumpy().copy() for o in exe.forward(is_train=False)]
    return evaluate


def reference_outputs(case, model, arrays):
    return _evaluator(case, model, arrays)({i.name: arrays[i.name] for i in model.graph.input})


def central_differences(arrays, names, objective, eps=1e-6):
    """d objective() / d arrays[name] by central differences, for each of `names` (arrays changed in place and
    restored)."""
    grads = {}
    for name in names:
        flat = arrays[name].reshape(-1)
        grad = np.zeros(flat.size)
        for i in range(flat.size):
            original = flat[i]
            flat[i] = original + eps
            plus = objective()
            flat[i] = original - eps
            minus = objective()
            flat[i] = original
            grad[i] = (plus - minus) / (2 * eps)
        grads[name] = grad.reshape(arrays[name].shape)
    return grads


def numeric_vjp(case, model, arrays, names, projections, eps=1e-6):
    """Central differences (float64) of sum_i sum(out_i * projection_i) of the reference, for each of `names`."""
    evaluate = _evaluator(case, model, arrays)
    feeds = {i.name: arrays[i.name].copy() for i in model.graph.input}

    def objective():
        outs = evaluate(feeds)
        return sum(float((np.asarray(o, np.float64) * p).sum()) for o, p in zip(outs, projections) if p is not None)

    return central_differences(feeds, names, objective, eps)


def run_onnx_gradient_case(case, tmp_path):
    """The case's symbolic gradients (float64, or float32 where ORT lacks float64 kernels) against the reference's
    float64 finite differences, every float output projected at once (a vector-Jacobian product)."""
    dtype = np.float64 if case.float64 else np.float32
    model64, arrays64 = case.model(np.float64)
    model, arrays = case.model(dtype)
    path = str(tmp_path / ("%s.onnx" % case.op_type))
    onnx.save(model, path)
    sym, arg_params, _ = mx.onnx.import_model(path)
    expected = reference_outputs(case, model64, arrays64)
    projections = [None if i in case.skip_outputs or not np.issubdtype(e.dtype, np.floating)
                   else random_projection(e.shape, seed=i) for i, e in enumerate(expected)]
    wrt = case.checked()
    args = {n: mx.nd.array(a, dtype=a.dtype) for n, a in arg_params.items()}
    args.update({n: mx.nd.NDArray(np.array(arrays[n], order="C")) for n in sym.list_arguments() if n in arrays})
    grads = {n: mx.nd.NDArray(np.zeros(arrays[n].shape, dtype)) for n in wrt}
    exe = sym.bind(mx.cpu(), args=args, args_grad=grads, grad_req={n: "write" for n in wrt})
    inference = [o.asnumpy().copy() for o in exe.forward(is_train=False)]
    outputs = exe.forward(is_train=True)
    rtol, atol = (1e-6, 1e-9) if case.float64 else (2e-4, 1e-5)
    for index, (out, exp) in enumerate(zip(outputs, expected)):
        if index in case.skip_outputs:
            continue
        assert_almost_equal(out.asnumpy(), exp.astype(out.dtype), rtol, atol,
                            names=("training forward output %d" % index, "reference"))
        # the training rule computes what the node computes
        assert_almost_equal(out.asnumpy(), inference[index], rtol, atol,
                            names=("training forward output %d" % index, "inference forward"))
    heads = [mx.nd.NDArray(np.asarray(p if p is not None else np.zeros(e.shape), dtype=out.dtype))
             for p, e, out in zip(projections, expected, outputs)]
    exe.backward(heads)
    numeric = numeric_vjp(case, model64, arrays64, wrt, projections)
    grad_rtol, grad_atol = (1e-5, 1e-7) if case.float64 else (2e-3, 1e-4)
    for name in wrt:
        scale = max(1.0, float(np.abs(numeric[name]).max()))
        assert_almost_equal(grads[name].asnumpy(), numeric[name], grad_rtol, grad_atol * scale,
                            names=("%s: gradient of %s" % (case, name), "float64 finite differences"))
