"""Symbol -> onnx.ModelProto for given input shapes and dtypes (the inference graph)."""
import json

import numpy as np

from ..base import MXNetError, MXNetForwardError
from ..symbol.infer import infer_graph_shapes, infer_graph_types
from ..symbol.node import topo_order
from .builder import GraphBuilder

__all__ = ["lower_symbol", "Lowered", "is_static", "dynamic_entries"]


class Lowered:
    """The lowered model and how its values map back to the symbol: `input_names` (graph inputs in list_inputs
    order), `output_names` (one ONNX output per symbol output), `shapes`/`dtypes` of every symbol entry."""

    def __init__(self, model, input_names, output_names, entry_shapes, entry_dtypes, aux_updates=None, loss=None,
                 head_outputs=(), aux_momentum=None, kernels=(), run_time_shapes=()):
        self.model = model
        self.input_names = input_names
        self.output_names = output_names
        self.entry_shapes = entry_shapes
        self.entry_dtypes = entry_dtypes
        self.aux_updates = aux_updates or {}     # training: aux input name -> output with its new value
        # training: aux input name -> None (takes the new value at forward) or the momentum of a moving average
        # updated at each backward (state * m + value * (1 - m))
        self.aux_momentum = aux_momentum or {}
        self.loss = loss                         # training: the scalar objective of the loss heads, or None
        self.head_outputs = tuple(head_outputs)  # training: positions of outputs that need a head gradient
        # whether ONNX Runtime decides some shape at run time: an entry without a static shape that the graph reads
        # or outputs (an imported node's omitted optional output has none and is neither)
        self.run_time_shapes = bool(run_time_shapes)
        # {entry name: (its ONNX value in `model`, dtype)} for those entries (a run can output them: their shapes)
        self.run_time_values = dict(run_time_shapes) if isinstance(run_time_shapes, dict) else {}
        # custom ops' Python kernels (onnxsym/custom/kernels.py): whoever runs a session of `model` keeps this
        self.kernels = list(kernels)


def infer_all(symbol, shapes, dtypes, run_shapes=None):
    """Shapes and dtypes of every entry; MXNetError naming what cannot be decided. An output of an imported ONNX
    node whose shape depends on data (ConstantOfShape of a computed shape, Reduce* over axes given as an input, a
    zero-size dimension) may stay partial (None for unknown dimensions, or None) when only imported nodes read it:
    ONNX Runtime decides it at each run (`dynamic_entries`), unless `run_shapes` ({entry name: shape}, what a run
    on the bound inputs gave) fixes it."""
    _, entry_shapes = infer_graph_shapes(symbol.outputs, shapes)
    _, entry_dtypes = infer_graph_types(symbol.outputs, dtypes)
    nodes = topo_order(symbol.outputs)
    readers = _readers(nodes)
    run_shapes = run_shapes or {}
    for node, i in dynamic_entries(nodes, entry_shapes, readers):
        given = run_shapes.get(node.output_name(i))
        entry_shapes[(id(node), i)] = _partial_shape(node, i) if given is None else tuple(given)
    for node in nodes:
        if node.is_variable:
            key = (id(node), 0)
            given = shapes.get(node.name)
            if key not in entry_shapes and given is not None and 0 in tuple(given) and \
                    all(_is_imported(r) for r in readers.get(key, [])):
                entry_shapes[key] = tuple(int(d) for d in given)   # an empty ONNX tensor (0 is no "unknown" there)
            if key not in entry_shapes:
                raise MXNetError("Cannot decide the shape of input '%s': give its shape" % node.name)
            entry_dtypes.setdefault(key, _default_dtype())
    # A second type pass lets float32 defaults of unspecified inputs flow through the graph.
    seeded = {n.name: entry_dtypes[(id(n), 0)] for n in nodes if n.is_variable}
    _, entry_dtypes = infer_graph_types(symbol.outputs, seeded)
    for node in nodes:
        for i in range(node.num_outputs if not node.is_variable else 1):
            if (id(node), i) not in entry_shapes and i < _visible(node):
                raise MXNetError("Cannot decide the shape of %s" % node.output_name(i))
    return nodes, entry_shapes, entry_dtypes


def is_static(shape):
    """A shape every dimension of which is known (what an array can be allocated with)."""
    return shape is not None and None not in shape


def _is_imported(node):
    return not node.is_variable and node.op.op_name == "_onnx"


def _readers(nodes):
    """{entry key: the nodes that read it}."""
    readers = {}
    for node in nodes:
        for src, idx in ([] if node.is_variable else node.inputs):
            readers.setdefault((id(src), idx), []).append(node)
    return readers


def dynamic_entries(nodes, entry_shapes, readers):
    """(node, output index) of the entries without a complete shape that may be decided at run time: outputs of
    imported ONNX nodes read only by imported nodes (or graph outputs)."""
    return [(node, i) for node in nodes if _is_imported(node) for i in range(node.num_outputs)
            if (id(node), i) not in entry_shapes and all(_is_imported(r) for r in readers.get((id(node), i), []))]


def _partial_shape(node, index):
    """What import recorded of an imported node's output shape (None dimensions unknown), or None."""
    recorded = json.loads(node.op.out_shapes) if node.op.out_shapes else []
    shape = recorded[index] if index < len(recorded) else None
    return None if shape is None else tuple(None if d is None else int(d) for d in shape)


def _default_dtype():
    import numpy as np
    return np.dtype(np.float32)


def _visible(node):
    return 1 if node.is_variable else node.op.num_visible_outputs()


def lower_symbol(symbol, shapes, dtypes=None, builder=None, training=False, train_mode=None,
                 gradients="onnxsym", run_shapes=None):
    """Lower `symbol` with input `shapes` ({name: shape}) and `dtypes` ({name: dtype}) to ONNX.

    training=True gives the training forward graph: training-mode ops, loss-head outputs behind stop-gradient
    markers, the auxiliary-state updates as extra outputs, and a scalar `loss` output whose gradient is the loss
    heads' MXNet backward (sum of stop(gradient) * input over the heads). train_mode=False with training=True
    gives that differentiable graph with the ops in inference mode (BatchNorm's moving statistics, no Dropout).
    gradients: who differentiates the training graph, 'onnxsym' or 'ort-training' (imported ONNX ops it cannot
    differentiate are rewritten, ops/onnx_training.py). run_shapes: the shapes a run gave the entries ONNX Runtime
    decides at run time ({entry name: shape}, see `Lowered.run_time_values`), to lower them as static.
    """
    nodes, entry_shapes, entry_dtypes = infer_all(symbol, shapes, dtypes or {}, run_shapes)
    g = builder or GraphBuilder()
    g.is_train = training
    g.gradients = gradients
    g.train_mode = training if train_mode is None else train_mode
    blocked = set()         # training: entries behind a stop-gradient marker (loss heads, non-differentiable)
    values = {}
    input_names = []
    for node in nodes:
        if node.is_variable:
            key = (id(node), 0)
            if node.name in input_names:
                raise MXNetError("Two different variables are named '%s'; input names must be unique" % node.name)
            values[key] = g.add_input(node.name, entry_shapes[key], entry_dtypes[key])
            if training and gradients == "ort-training":
                # ORT's gradient builder defines x_grad twice for a node that reads graph input x twice
                # (Mul(x, x)); reading it through an Identity avoids that. (onnxsym's own gradients need none, and
                # each Identity costs ORT a few microseconds per run)
                g.scope = node.name
                values[key] = g.Identity(values[key])
                g.set_info(values[key], entry_shapes[key], entry_dtypes[key])
            input_names.append(node.name)
    _lower_nodes(g, nodes, values, entry_shapes, entry_dtypes, blocked)
    output_names, used = [], set(input_names)
    for node, index in symbol.outputs:
        key = (id(node), index)
        value = values.get(key)
        if value is None:
            raise MXNetError("Output %s has no lowering" % node.output_name(index))
        final = g._renames.get(value, value)
        if final in used or g.producer(value) is None:
            final = g.Identity(value)
            g.rename(final, g.fresh(node.output_name(index)))
            final = g._renames[final]
        used.add(final)
        g.add_output(final, entry_shapes[key], entry_dtypes[key])
        output_names.append(final)
    aux_updates, aux_momentum, loss = {}, {}, None
    if training or g.aux_updates:     # (aux updates without training: imperative ops in train mode, mx.autograd)
        for name in input_names:
            key = (id(_variable(nodes, name)), 0)
            if values[key] in g.aux_updates:
                value, momentum = g.aux_updates[values[key]]
                final = g.Identity(value)
                g.rename(final, g.fresh(name + "_new"))
                aux_updates[name] = g._renames[final]
                aux_momentum[name] = momentum
                g.add_output(aux_updates[name], entry_shapes[key], entry_dtypes[key])
    if training:
        if g.head_gradients:
            g.scope = "loss"
            terms = [g.ReduceSum(g.Mul(g.stop_gradient(grad, g.dtype(value)), value), keepdims=0)
                     for value, grad in g.head_gradients]
            total = terms[0]
            for term in terms[1:]:
                total = g.Add(total, term)
            loss = g.fresh("__loss__")
            g.rename(total, loss)
            g.add_output(loss, (), g.dtype(g.head_gradients[0][0]))
    used = set(_readers(nodes)) | {(id(node), index) for node, index in symbol.outputs}
    run_time = [key for key, shape in entry_shapes.items() if key in used and not is_static(shape)]
    named = {(id(node), i): node.output_name(i) for node in nodes if not node.is_variable
             for i in range(node.num_outputs)}
    # (names as the model will have them: g.model() applies the renames)
    run_time_values = {named[key]: (g._renames.get(values[key], values[key]), entry_dtypes.get(key))
                       for key in run_time if key in named and values.get(key) is not None}
    model = g.model()
    # integer and boolean outputs (indices, masks, quantized values) pass no gradient: they take no head gradient
    heads = [i for i, (node, index) in enumerate(symbol.outputs) if training and (id(node), index) not in blocked
             and np.dtype(entry_dtypes[(id(node), index)]).kind in "fc"]
    return Lowered(model, input_names, output_names, entry_shapes, entry_dtypes, aux_updates, loss, heads,
                   aux_momentum, g.kernels, run_time_values)


def _lower_nodes(g, nodes, values, entry_shapes, entry_dtypes, blocked):
    """Lower the op nodes in order; `values` maps (id(node), index) to ONNX values and is filled in. In training
    graphs, outputs of loss heads and of non-differentiable ops go behind stop-gradient markers (`blocked`)."""
    training = g.is_train
    for node in nodes:
        if node.is_variable:
            continue
        g.scope = node.name
        ins = [values[(id(src), idx)] for src, idx in node.inputs]
        g.out_shapes = tuple(entry_shapes.get((id(node), i)) for i in range(node.num_outputs))
        try:
            result = node.op.lower_onnx(g, *ins)
        except MXNetError as err:
            kind = MXNetForwardError if isinstance(err, MXNetForwardError) else MXNetError
            raise kind("Cannot lower operator %s (%s): %s" % (node.name, node.op.op_name, err)) from None
        result = result if isinstance(result, (tuple, list)) else (result,)
        if training and not node.op.differentiable:
            # No gradient is defined (argmax, comparisons, rounding): nothing flows back, inputs get zeros.
            result = [None if r is None else g.stop_gradient(r, entry_dtypes.get((id(node), i)))
                      for i, r in enumerate(result)]
            blocked.update((id(node), i) for i in range(len(result)))
        elif training:
            gradients = node.op.head_gradients(g, ins, result)
            if gradients is not None:
                for value, gradient in zip(ins, gradients):
                    if gradient is not None:
                        g.add_head_gradient(value, gradient)
                result = [None if r is None else g.stop_gradient(r, entry_dtypes.get((id(node), i)))
                          for i, r in enumerate(result)]
                blocked.update((id(node), i) for i in range(len(result)))
        for i, value in enumerate(result):
            if value is None:
                continue
            key = (id(node), i)
            if key in entry_shapes:
                g.set_info(value, entry_shapes[key], entry_dtypes.get(key))
                if training and entry_shapes[key] is not None and key in entry_dtypes:
                    # the shapes symbol inference knows, for the gradient builder (ONNX shape inference cannot
                    # follow data-dependent shapes: pads or shapes given as arguments, Loop outputs)
                    g.declare(value, entry_shapes[key], entry_dtypes[key])
            if g.producer(value) is not None and value not in ins:
                name = g.fresh(node.output_name(i))
                g.rename(value, name)
            values[key] = value


def lower_inline(g, symbol, inputs):
    """Lower `symbol` into the builder `g` with its variables bound to the ONNX values `inputs` ({name: value});
    returns its output values (composite custom ops)."""
    shapes = {name: g.shape(value) for name, value in inputs.items()}
    dtypes = {name: g.dtype(value) for name, value in inputs.items()}
    nodes, entry_shapes, entry_dtypes = infer_all(symbol, shapes, dtypes)
    values = {(id(n), 0): inputs[n.name] for n in nodes if n.is_variable}
    scope = g.scope
    _lower_nodes(g, nodes, values, entry_shapes, entry_dtypes, set())
    g.scope = scope
    return [values[(id(node), index)] for node, index in symbol.outputs]


def _variable(nodes, name):
    return next(n for n in nodes if n.is_variable and n.name == name)
