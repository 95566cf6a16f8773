"""`Custom`: operators written in Python (mx.operator) or as composites of symbols (register_function).

Argument/output/aux names and the shape and type rules come from the registered CustomOpProp; the other keyword
arguments of mx.sym.Custom reach the prop as strings. A Python op lowers to one Python-op node (a placeholder
that the training graph differentiates with the op's own backward); a composite op lowers its body inline.
"""
import inspect

import numpy as np

from ..base import MXNetError
from ..lower.to_onnx import lower_inline
from ..ops.params import param
from ..ops.registry import OpDef, register
from ..symbol.symbol import Variable
from .kernels import new_kernel
from .operator import get_function, get_prop

__all__ = ["Custom"]


@register
class Custom(OpDef):
    """A user-defined operator (MXNet Custom). Mirrors MXNet src/operator/custom/custom.cc."""
    op_type: str = param(doc="Name of the custom operator, as registered with mx.operator.register.")
    kwargs: tuple = param((), doc="The other keyword arguments, passed to the CustomOpProp as strings.")

    def __post_init__(self):
        prop_cls, function = get_prop(self.op_type), get_function(self.op_type)
        if prop_cls is None and function is None:
            raise MXNetError("Custom op_type '%s' is not registered: import the module that registers it with "
                             "mx.operator.register('%s')" % (self.op_type, self.op_type))
        prop = None
        if prop_cls is not None:
            try:
                prop = prop_cls(**dict(self.kwargs))
            except TypeError as err:
                raise MXNetError("Custom op '%s': %s(%s) failed: %s" % (self.op_type, prop_cls.__name__,
                                 ", ".join("%s=%r" % kv for kv in self.kwargs), err)) from None
        object.__setattr__(self, "_prop", prop)
        object.__setattr__(self, "_function", function)

    @classmethod
    def from_attrs(cls, attrs, node_name=None, strict=True):
        if "op_type" not in attrs:
            raise MXNetError("Custom needs op_type=%s" % (" (node '%s')" % node_name if node_name else ""))
        kwargs = tuple(sorted((k, str(v)) for k, v in attrs.items()
                              if k != "op_type" and not (k.startswith("__") and k.endswith("__"))))
        return cls(op_type=attrs["op_type"], kwargs=kwargs)

    # ----- names from the prop (or the function's signature) -----
    def input_names(self):
        if self._prop is not None:
            return tuple(self._prop.list_arguments()) + tuple(self._prop.list_auxiliary_states())
        return tuple("arg%d" % i for i in range(self._function_arity()))

    def aux_names(self):
        return tuple(self._prop.list_auxiliary_states()) if self._prop is not None else ()

    def output_names(self):
        if self._prop is not None:
            return tuple(self._prop.list_outputs())
        return self._body_outputs()

    def _function_arity(self):
        parameters = inspect.signature(self._function).parameters.values()
        return sum(1 for p in parameters if p.kind == p.POSITIONAL_OR_KEYWORD and p.default is p.empty)

    def _body(self, names=None):
        names = names or ["arg%d" % i for i in range(self._function_arity())]
        body = self._function(*[Variable(n) for n in names], **dict(self.kwargs))
        return body, names

    def _body_outputs(self):
        count = len(self._body()[0].list_outputs())
        return ("output",) if count == 1 else tuple("output%d" % i for i in range(count))

    # ----- rules -----
    def infer_shape(self, *in_shapes):
        if self._function is not None:
            body, names = self._body()
            if any(s is None for s in in_shapes):
                return None
            _, out, _ = body.infer_shape_partial(**dict(zip(names, in_shapes)))
            return list(in_shapes), [tuple(s) if s else None for s in out]
        n_args = len(self._prop.list_arguments())
        known = [list(s) if s is not None else [] for s in in_shapes]
        try:
            result = self._prop.infer_shape(known[:n_args])
        except Exception as err:
            if any(s is None for s in in_shapes):
                return None     # not enough information yet
            raise MXNetError("Custom op '%s': infer_shape failed: %s: %s" % (self.op_type, type(err).__name__,
                                                                            err)) from err
        args, outs = result[0], result[1]
        aux = result[2] if len(result) > 2 else []
        shapes = [tuple(s) if s is not None and len(s) else None for s in list(args) + list(aux)]
        return shapes, [tuple(s) for s in outs]

    def infer_type(self, *in_types):
        if self._function is not None:
            return super().infer_type(*in_types)
        if in_types and in_types[0] is None:
            return None
        # As MXNet: the prop sees None for an argument whose type is not known yet, and a None it returns stays
        # unknown (the default infer_type leaves a label's type undecided: infer_type gives (None, None, None)).
        types = [None if t is None else np.dtype(t).type for t in in_types[: len(self._prop.list_arguments())]]
        result = self._prop.infer_type(types)
        args, outs = result[0], result[1]
        aux = result[2] if len(result) > 2 else []
        as_dtype = lambda t: None if t is None else np.dtype(t)     # noqa: E731
        return [as_dtype(t) for t in list(args) + list(aux)], [as_dtype(t) for t in outs]

    # ----- lowering -----
    def lower(self, g, *inputs):
        if self._function is not None:
            body, names = self._body()
            if g.export_functions and not g.is_train:
                outputs = g.function_op(self.op_type, list(inputs),
                                        lambda sub, formal: lower_inline(sub, body, dict(zip(names, formal))))
            else:
                outputs = lower_inline(g, body, dict(zip(names, inputs)))
            return outputs if len(outputs) > 1 else outputs[0]
        n_args = len(self._prop.list_arguments())
        in_shapes = [g.shape(v) for v in inputs]
        in_dtypes = [g.dtype(v) for v in inputs]
        _, out_types = self.infer_type(*in_dtypes)
        _, out_shapes = self.infer_shape(*in_shapes)
        kernel = new_kernel(self._prop, self.op_type, self.kwargs, in_shapes, in_dtypes, n_args, g.train_mode)
        n_out, n_aux = len(out_types), len(inputs) - n_args
        outputs = g.python_op(list(inputs), in_dtypes, list(out_types) + in_dtypes[n_args:], kernel,
                              n_args=n_args, n_outputs=n_out)
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        for value, shape, dtype in zip(outputs, out_shapes, out_types):
            g.set_info(value, shape, dtype)
        for aux_in, aux_out in zip(inputs[n_args:], outputs[n_out:]):
            g.set_info(aux_out, g.shape(aux_in), g.dtype(aux_in))
            if g.is_train:
                g.update_aux(aux_in, aux_out)
        return outputs[:n_out] if n_out > 1 else outputs[0]

    def head_gradients(self, g, inputs, outputs):
        """need_top_grad=False ops are loss heads: their backward runs with a zero head gradient (it ignores it)
        and their outputs pass no gradient back."""
        if self._prop is None or self._prop.need_top_grad_:
            return None
        for value in outputs:
            if value is not None:
                g.add_head_gradient(value, g.Mul(value, g.scalar(0, g.dtype(value))))
        return [None] * len(inputs)
