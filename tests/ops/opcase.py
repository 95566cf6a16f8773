"""OpCase: one operator configuration with a numpy reference, and the checks every case goes through.

`run_case` builds the symbol, lets `infer_shape` shape every argument (so the shape rule is tested), feeds seeded
random inputs, compares the forward outputs with the numpy reference, checks the lowered model with
`onnx.checker.check_model(full_check=True)`, and runs that model in a plain ORT InferenceSession to confirm that
the shapes ORT produces equal the inferred ones.
"""
import dataclasses
from typing import Callable, Optional

import numpy as np
import onnx
import onnxruntime as ort

import onnxsym as mx
from onnxsym.ops.params import format_value
from onnxsym.ops.registry import get_op
from onnxsym.test_utils import assert_almost_equal, lowered_model

COVERED = set()     # op names exercised by some case (checked by tests/ops/test_registry.py)


@dataclasses.dataclass
class OpCase:
    op: str                                   # function name in mx.sym (an MXNet name or alias)
    attrs: dict
    shapes: dict                              # data input shapes; parameter shapes come from infer_shape
    ref: Callable                             # numpy reference: ref(**arrays by input name) -> array or list
    dtype: str = "float32"
    values: Optional[dict] = None             # explicit input arrays (by input name) instead of random ones
    low: float = -1.0                         # range of the random inputs
    high: float = 1.0
    nargs: Optional[int] = None               # variadic ops: number of positional inputs
    rtol: Optional[float] = None
    atol: Optional[float] = None
    int_inputs: dict = dataclasses.field(default_factory=dict)   # input name -> (low, high) for integer-valued data
    name: str = ""

    def __post_init__(self):
        COVERED.add(get_op(self.op).op_name)

    def __str__(self):
        return self.name or "%s-%s-%s" % (self.op, "-".join("%s=%s" % kv for kv in self.attrs.items()),
                                         "-".join("x".join(map(str, s)) for s in self.shapes.values()))

    def input_names(self):
        opcls = get_op(self.op)
        params = {k: format_value(v) for k, v in self.attrs.items()}
        if opcls.variadic:
            params.setdefault("num_args", str(self.nargs))
        return opcls.from_attrs(params).input_names()

    def symbol(self):
        fn = getattr(mx.sym, self.op)
        names = self.input_names()
        variables = [mx.sym.Variable(n) for n in names]
        if get_op(self.op).variadic:
            return fn(*variables, **self.attrs)
        return fn(**dict(zip(names, variables)), **self.attrs)

    def inputs(self, sym, seed=0):
        rng = np.random.RandomState(seed)
        arg_shapes, _, aux_shapes = sym.infer_shape(**self.shapes)
        assert arg_shapes is not None, "infer_shape could not decide every shape for %s" % self
        arrays = {}
        names = sym.list_arguments() + sym.list_auxiliary_states()
        for name, shape in zip(names, list(arg_shapes) + list(aux_shapes)):
            if self.values and name in self.values:
                arrays[name] = np.asarray(self.values[name])
                assert arrays[name].shape == tuple(shape), (name, arrays[name].shape, shape)
            elif name in self.int_inputs:
                lo, hi = self.int_inputs[name]
                arrays[name] = rng.randint(lo, hi, size=shape).astype(self.dtype)
            else:
                arrays[name] = rng.uniform(self.low, self.high, size=shape).astype(self.dtype)
        return arrays


def run_case(case):
    """Forward vs numpy, shape rule vs ORT, and a valid ONNX model. Returns the outputs."""
    sym = case.symbol()
    arrays = case.inputs(sym)
    expected = case.ref(**arrays)
    expected = list(expected) if isinstance(expected, (list, tuple)) else [expected]
    args = {n: mx.nd.array(arrays[n], dtype=arrays[n].dtype) for n in sym.list_arguments()}
    aux = {n: mx.nd.array(arrays[n], dtype=arrays[n].dtype) for n in sym.list_auxiliary_states()}
    executor = sym.bind(mx.cpu(), args=args, aux_states=aux)
    outputs = [o.asnumpy() for o in executor.forward()]
    assert len(outputs) == len(expected), (len(outputs), len(expected))
    _, out_shapes, _ = sym.infer_shape(**{n: a.shape for n, a in arrays.items()})
    for name, out, exp, shape in zip(sym.list_outputs(), outputs, expected, out_shapes):
        exp = np.asarray(exp)
        assert out.shape == exp.shape, "%s: shape %s, numpy reference %s" % (name, out.shape, exp.shape)
        assert out.shape == tuple(shape), "%s: shape %s, infer_shape %s" % (name, out.shape, shape)
        assert_almost_equal(out, exp.astype(out.dtype) if exp.dtype != out.dtype else exp, case.rtol, case.atol,
                            names=(name, "numpy"))
    lowered = lowered_model(sym, {n: a.shape for n, a in arrays.items()},
                            {n: a.dtype for n, a in arrays.items()})
    onnx.checker.check_model(lowered.model, full_check=True)
    options = ort.SessionOptions()
    if any(node.domain == "ai.onnx.contrib" for node in lowered.model.graph.node):    # custom ops' Python nodes
        from onnxruntime_extensions import get_library_path
        options.register_custom_ops_library(get_library_path())
    session = ort.InferenceSession(lowered.model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    feeds = {i.name: arrays[i.name] for i in session.get_inputs()}
    raw = session.run(None, feeds)
    for out, ort_out in zip(outputs, raw):
        assert ort_out.shape == out.shape
        np.testing.assert_array_equal(ort_out, out)
    return outputs


def gradient_nodes(case, sym):
    """The arguments whose gradient a finite-difference check can see: float inputs that are not integer-valued
    (indices, labels) in this case."""
    return [n for n in sym.list_arguments() if n not in case.int_inputs]


def run_gradient_case(case, rtol=None, atol=None, numeric_eps=None):
    """Executor.backward against central finite differences for every visible output of the case's symbol."""
    from onnxsym.test_utils import check_numeric_gradient
    sym = case.symbol()
    arrays = case.inputs(sym)
    nodes = gradient_nodes(case, sym)
    aux = {n: arrays[n] for n in sym.list_auxiliary_states()}
    location = {n: arrays[n] for n in sym.list_arguments()}
    _, out_types, _ = sym.infer_type(**{n: arrays[n].dtype for n in sym.list_arguments()})
    for index in range(len(sym.list_outputs())):
        if out_types and not np.issubdtype(np.dtype(out_types[index]), np.floating):
            continue        # integer outputs (indices, integer casts) are not differentiable
        check_numeric_gradient(sym[index], location, aux_states=aux, grad_nodes=nodes, dtype=case.dtype,
                               rtol=rtol, atol=atol, numeric_eps=numeric_eps)
