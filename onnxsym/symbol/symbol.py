"""The Symbol API: MXNet 1.x symbolic graphs as plain Python data."""
import copy as _copy
import numbers
import warnings

from .._shapes import is_complete, to_mxnet, user_shape
from ..base import DTYPE_NAMES, STYPE_CODES, MXNetError, NotImplementedForSymbol, normalize_dtype
from ..context import current_context
from ..name import HIDDEN_KEYS, AttrScope, NameManager, format_value, hidden_key, set_attr_key
from ..ops.registry import bind_inputs, get_op, split_call, symbol_attrs
from ..ops.shape import split_v2_params
from .infer import infer_graph_shapes, infer_graph_types
from .node import Node, topo_order

__all__ = ["Symbol", "Variable", "var", "Group", "create_symbol"]


def _serialize():
    """The JSON codec behind tojson/save/debug_str/pickling, which builds Symbols when it loads."""
    from . import serialize  # lazy: MXNet puts tojson/save on Symbol; serialize builds Symbols
    return serialize


class Symbol:
    """A list of graph outputs `(node, index)`. Immutable apart from `_set_attr`, as in MXNet."""

    __slots__ = ("_outputs", "__weakref__")
    __array_priority__ = 1000.0     # numpy scalars defer to Symbol's operators: np.float64(2) / x is _rdiv_scalar

    def __init__(self, outputs):
        self._outputs = tuple(outputs)

    # ------------------------------------------------------------------ identity and structure
    @property
    def outputs(self):
        return self._outputs

    @property
    def name(self):
        """The node name when the symbol has one output, else None."""
        nodes = {id(node) for node, _ in self._outputs}
        return self._outputs[0][0].name if len(nodes) == 1 else None

    def __repr__(self):
        if len(self._outputs) == 1:
            return "<Symbol %s>" % self.name
        return "<Symbol group [%s]>" % ", ".join(node.name for node, _ in self._outputs)

    def __len__(self):
        return len(self._outputs)

    def __iter__(self):
        return (Symbol([entry]) for entry in self._outputs)

    def __getitem__(self, index):
        names = self.list_outputs()
        if isinstance(index, str):
            matches = [i for i, n in enumerate(names) if n == index]
            if not matches:
                raise ValueError("There is no output named '%s' (outputs: %s)" % (index, ", ".join(names)))
            if len(matches) > 1:
                raise ValueError("There are multiple outputs named '%s'" % index)
            index = matches[0]
        if isinstance(index, slice):
            return Symbol(self._outputs[index])
        if not isinstance(index, numbers.Integral):
            raise TypeError("Symbol only supports integer and string indexing, got %r" % (index,))
        if not -len(names) <= index < len(names):
            raise IndexError("output index %d out of range for %d outputs" % (index, len(names)))
        return Symbol([self._outputs[index]])

    def __copy__(self):
        return Symbol(self._outputs)

    def __deepcopy__(self, memo=None):
        return Symbol(_clone(self._outputs, {}))

    def __getstate__(self):
        return {"handle": self.tojson()}

    def __setstate__(self, state):
        self._outputs = _serialize().load_json(state["handle"])._outputs

    def _nodes(self):
        return topo_order(self._outputs)

    # ------------------------------------------------------------------ listing
    def list_outputs(self):
        return [node.output_name(index) for node, index in self._outputs]

    def _input_nodes(self):
        """(variable nodes in DFS order, set of ids of the ones used as auxiliary states)."""
        nodes = self._nodes()
        aux = set()
        for node in nodes:
            for (src, _), is_aux in zip(node.inputs, node.aux_flags()):
                if is_aux and src.is_variable:
                    aux.add(id(src))
        return [n for n in nodes if n.is_variable], aux

    def list_arguments(self):
        variables, aux = self._input_nodes()
        return [n.name for n in variables if id(n) not in aux]

    def list_auxiliary_states(self):
        variables, aux = self._input_nodes()
        return [n.name for n in variables if id(n) in aux]

    def list_inputs(self):
        variables, _ = self._input_nodes()
        return [n.name for n in variables]

    def get_internals(self):
        """Every output of every node, in DFS order (`sym.get_internals()['fc1_output']`)."""
        return Symbol([(n, i) for n in self._nodes()
                       for i in range(1 if n.is_variable else n.op.num_visible_outputs())])

    def get_children(self):
        """The inputs of this symbol's head node(s) as a group, or None for a variable. A node is visited once
        however many of its outputs the symbol holds (nnvm Symbol::GetChildren), so `split.get_children()` of a
        SliceChannel is its data input once."""
        entries, seen = [], set()
        for node, _ in self._outputs:
            if id(node) not in seen:
                seen.add(id(node))
                entries.extend(node.inputs)
        return Symbol(entries) if entries else None

    # ------------------------------------------------------------------ attributes
    def attr(self, key):
        """The attribute `key` of the (single) head node, or None; 'name' and 'op_name' as nnvm answers them."""
        if len(self._outputs) != 1:
            return None
        node = self._outputs[0][0]
        if key == "name":
            return node.name
        if key == "op_name":
            return "null" if node.op is None else node.op.op_name
        value = node.attrs.get(key)
        return node.attrs.get(hidden_key(key)) if value is None else value

    def list_attr(self, recursive=False):
        if recursive:
            raise DeprecationWarning("Symbol.list_attr with recursive=True has been deprecated. "
                                     "Please use attr_dict instead.")
        return _with_plain_keys(self._outputs[0][0].attrs)     # a group answers for its first output, as nnvm

    def attr_dict(self):
        """{node name: attributes} for every node with attributes."""
        return {n.name: _with_plain_keys(n.attrs) for n in self._nodes() if n.attrs}

    def _set_attr(self, **kwargs):
        """Set attributes of the head node (MXSymbolSetAttr): string values only, `name` renames the node, an op
        node's parameters are parsed again (so `num_hidden='9'` changes the op, and an unknown key is an error)."""
        nodes = {id(node) for node, _ in self._outputs}
        if len(nodes) != 1:
            raise MXNetError("Symbol.SetAttrs only works for non-grouped symbol")
        node = self._outputs[0][0]
        for key, value in _settable(kwargs).items():
            if key == "name":
                node.name = value
                continue
            attrs = dict(node.attrs, **{key: value})
            if node.op is not None:
                node.op = type(node.op).from_attrs(attrs, node_name=node.name, strict=key not in node.attrs)
            node.attrs = attrs

    # ------------------------------------------------------------------ composition
    def __call__(self, *args, **kwargs):
        """Compose: replace argument variables by the given symbols (by position or by name)."""
        name = kwargs.pop("name", None)
        result = _copy.deepcopy(self)
        result._compose(*args, name=name, **kwargs)
        return result

    def _compose(self, *args, name=None, **kwargs):
        if args and kwargs:
            raise TypeError("compose only accept input Symbols either as positional or keyword arguments, not both")
        arg_names = self.list_arguments()
        if len(args) > len(arg_names):
            raise MXNetError("compose: %d symbols given but the symbol has %d arguments" % (len(args), len(arg_names)))
        replace = dict(zip(arg_names, args)) if args else dict(kwargs)
        for key, value in replace.items():
            if not isinstance(value, Symbol) or len(value) != 1:
                raise TypeError("compose expects single-output Symbols, got %r for '%s'" % (value, key))
            if key not in arg_names:
                raise MXNetError("compose: '%s' is not an argument of the symbol (arguments: %s)"
                                 % (key, ", ".join(arg_names)))
        for node in self._nodes():
            node.inputs = tuple(replace[src.name]._outputs[0] if src.is_variable and src.name in replace
                                else (src, idx) for src, idx in node.inputs)
        if name is not None and len(self._outputs) == 1:
            self._outputs[0][0].name = name

    # ------------------------------------------------------------------ arithmetic
    def _binary(self, other, sym_op, scalar_op):
        if isinstance(other, Symbol):
            return create_symbol(sym_op, self, other)
        if isinstance(other, numbers.Number):
            return create_symbol(scalar_op, self, scalar=other)
        raise TypeError("type %s not supported" % str(type(other)))

    def _rscalar(self, other, scalar_op):
        if isinstance(other, numbers.Number):
            return create_symbol(scalar_op, self, scalar=other)
        raise TypeError("type %s not supported" % str(type(other)))

    def __add__(self, other):
        return self._binary(other, "_Plus", "_PlusScalar")

    __radd__ = __add__

    def __sub__(self, other):
        return self._binary(other, "_Minus", "_MinusScalar")

    def __rsub__(self, other):
        return self._rscalar(other, "_RMinusScalar")

    def __mul__(self, other):
        return self._binary(other, "_Mul", "_MulScalar")

    __rmul__ = __mul__

    def __truediv__(self, other):
        return self._binary(other, "_Div", "_DivScalar")

    def __rtruediv__(self, other):
        return self._rscalar(other, "_RDivScalar")

    __div__, __rdiv__ = __truediv__, __rtruediv__

    def __mod__(self, other):
        return self._binary(other, "_Mod", "_ModScalar")

    def __rmod__(self, other):
        return self._rscalar(other, "_RModScalar")

    def __pow__(self, other):
        return self._binary(other, "_Power", "_PowerScalar")

    def __rpow__(self, other):
        return self._rscalar(other, "_rpower_scalar")

    def __neg__(self):
        return self.__mul__(-1.0)

    def __abs__(self):
        return create_symbol("abs", self)

    def __eq__(self, other):
        return self._binary(other, "_equal", "_equal_scalar")

    def __ne__(self, other):
        return self._binary(other, "_not_equal", "_not_equal_scalar")

    def __gt__(self, other):
        return self._binary(other, "_greater", "_greater_scalar")

    def __ge__(self, other):
        return self._binary(other, "_greater_equal", "_greater_equal_scalar")

    def __lt__(self, other):
        return self._binary(other, "_lesser", "_lesser_scalar")

    def __le__(self, other):
        return self._binary(other, "_lesser_equal", "_lesser_equal_scalar")

    __hash__ = object.__hash__

    def __bool__(self):
        raise NotImplementedForSymbol(self.__bool__, "bool")

    __nonzero__ = __bool__

    # In-place arithmetic would rebind a graph node; MXNet refuses it (use `x = x + y`).
    def __iadd__(self, other):
        raise NotImplementedForSymbol(self.__iadd__, "+=", other, 1)

    def __isub__(self, other):
        raise NotImplementedForSymbol(self.__isub__, "-=", other)

    def __imul__(self, other):
        raise NotImplementedForSymbol(self.__imul__, "*=", other)

    def __idiv__(self, other):
        raise NotImplementedForSymbol(self.__idiv__, "/=", other)

    def __itruediv__(self, other):
        raise NotImplementedForSymbol(self.__itruediv__, "/=", other)

    def astype(self, dtype):
        """Cast to `dtype` (MXNet: `cast`, so the node is named cast0, cast1, ...)."""
        return create_symbol("cast", self, dtype=dtype)

    def _gen_atomic_symbol(self):
        """The head op of this symbol applied anew, with the same name and attributes and fresh input variables
        (MXNet: the op node without its inputs)."""
        node = self._outputs[0][0]
        if node.op is None:
            raise MXNetError("_gen_atomic_symbol: %s is a variable, not an operator" % node.name)
        inputs = [(Node(None, "%s_%s" % (node.name, name)), 0) for name in node.op.input_names()]
        atomic = Node(node.op, node.name, node.attrs, inputs)
        return Symbol([(atomic, i) for i in range(node.op.num_visible_outputs())])

    def split_v2(self, indices_or_sections, axis=0, squeeze_axis=False):
        """mx.sym.split_v2(self, ...): parts along `axis` (int: that many; tuple: at those indices)."""
        return create_symbol("_split_v2", self, **split_v2_params(indices_or_sections, axis, squeeze_axis))

    # ------------------------------------------------------------------ inference
    def _shape_query(self, args, kwargs):
        if args and kwargs:
            raise ValueError("Can only specify known argument shapes either by positional or kwargs way.")
        if args:
            names = self.list_arguments()
            if len(args) > len(names):
                raise ValueError("infer_shape: %d shapes given for %d arguments" % (len(args), len(names)))
            given = zip(names, args)
        else:
            inputs = set(self.list_inputs())
            for key in kwargs:
                if key not in inputs:
                    raise MXNetError("infer_shape: '%s' is not an input of the symbol (inputs: %s)"
                                     % (key, ", ".join(self.list_inputs())))
            given = kwargs.items()
        return {k: user_shape(v, k, "infer_shape") for k, v in given if v is not None}

    def _infer(self, infer, known):
        nodes, values = infer(self._outputs, known)
        variables, aux = self._input_nodes()
        arg = [values.get((id(n), 0)) for n in variables if id(n) not in aux]
        auxv = [values.get((id(n), 0)) for n in variables if id(n) in aux]
        out = [values.get((id(n), i)) for n, i in self._outputs]
        return arg, out, auxv

    def _infer_shapes(self, args, kwargs):
        """(arg, out, aux) shapes in the inference form (None / None dimensions for what is unknown)."""
        return self._infer(lambda heads, known: infer_graph_shapes(heads, known, partial=True, mxnet_notation=True),
                           self._shape_query(args, kwargs))

    def infer_shape(self, *args, **kwargs):
        """(arg_shapes, out_shapes, aux_shapes) from known input shapes (by position in list_arguments order, or
        by name; 0 in a dimension means unknown). (None, None, None) with a warning naming the arguments whose
        shapes stay incomplete, as MXNet."""
        arg, out, aux = self._infer_shapes(args, kwargs)
        if all(is_complete(s) for s in arg + out + aux):
            return arg, out, aux
        unknown = []
        for name, shape in zip(self.list_arguments(), arg):
            if not is_complete(shape):
                if len(unknown) >= 10:
                    unknown.append("...")
                    break
                unknown.append("%s: %s" % (name, to_mxnet(shape)))
        warnings.warn("Cannot decide shape for the following arguments (0s in shape means unknown dimensions). "
                      "Consider providing them as input:\n\t" + "\n\t".join(unknown), stacklevel=2)
        return None, None, None

    def infer_shape_partial(self, *args, **kwargs):
        """Like infer_shape, but returns what is known: 0 for an unknown dimension, () for an unknown shape."""
        arg, out, aux = self._infer_shapes(args, kwargs)
        fill = lambda shapes: [to_mxnet(s) for s in shapes]
        return fill(arg), fill(out), fill(aux)

    def _type_query(self, args, kwargs):
        if args and kwargs:
            raise ValueError("Can only specify known argument types either by positional or kwargs way.")
        names = self.list_arguments()
        known = dict(zip(names, args)) if args else dict(kwargs)
        inputs = set(self.list_inputs())
        for key in known:
            if key not in inputs:
                raise MXNetError("infer_type: '%s' is not an input of the symbol" % key)
        return {k: normalize_dtype(v) for k, v in known.items() if v is not None}

    def infer_type(self, *args, **kwargs):
        """(arg_types, out_types, aux_types) as numpy type classes; (None, None, None) when undecided."""
        arg, out, aux = self._infer(infer_graph_types, self._type_query(args, kwargs))
        if any(t is None for t in arg + out + aux):
            return None, None, None
        as_type = lambda types: [t.type for t in types]
        return as_type(arg), as_type(out), as_type(aux)

    def infer_type_partial(self, *args, **kwargs):
        arg, out, aux = self._infer(infer_graph_types, self._type_query(args, kwargs))
        as_type = lambda types: [None if t is None else t.type for t in types]
        return as_type(arg), as_type(out), as_type(aux)

    # ------------------------------------------------------------------ serialization
    def tojson(self, remove_amp_cast=True):
        """MXNet's JSON of the graph; `remove_amp_cast`: without the amp_cast / amp_multicast nodes that feed other
        nodes (mx.contrib.amp's casts; a cast that is an output stays), as MXNet writes it by default."""
        return _serialize().to_json(self._without_amp_cast() if remove_amp_cast else self)

    def save(self, fname, remove_amp_cast=True):
        _serialize().save(self._without_amp_cast() if remove_amp_cast else self, fname)

    def _without_amp_cast(self):
        """MXNet's RemoveAmpCast pass (src/operator/contrib/amp_graph_pass.cc) on a copy: each input taken from an
        amp_cast is that cast's input, each one from an amp_multicast output i the multicast's input i."""
        if not any(n.op is not None and n.op.op_name in ("amp_cast", "amp_multicast") for n in self._nodes()):
            return self
        outputs = _clone(self._outputs, {})
        for node in topo_order(outputs):
            inputs, versions = list(node.inputs), list(node.versions)
            for k, (src, index) in enumerate(inputs):
                if src.op is not None and src.op.op_name in ("amp_cast", "amp_multicast"):
                    pick = 0 if src.op.op_name == "amp_cast" else index
                    inputs[k], versions[k] = src.inputs[pick], src.versions[pick]
            node.inputs, node.versions = tuple(inputs), tuple(versions)
        return Symbol(outputs)

    def debug_str(self):
        return _serialize().debug_str(self)

    def export_onnx(self, params, in_shapes=None, in_types="float32", onnx_file_path="model.onnx", **kwargs):
        """Write this symbol with `params` (name -> NDArray, or a .params file) as an ONNX model: shorthand for
        mx.onnx.export_model(self, params, in_shapes, in_types, onnx_file_path, **kwargs). Returns the path."""
        from ..onnx import export_model  # lazy: Symbol.export_onnx reaches mx.onnx, a higher layer
        return export_model(self, params, in_shapes, in_types, onnx_file_path, **kwargs)

    # ------------------------------------------------------------------ execution (the runtime sits above symbol)
    def bind(self, ctx, args, args_grad=None, grad_req="write", aux_states=None, group2ctx=None,
             shared_exec=None):
        """An Executor over the given arrays (list in list_arguments order, or dict by name)."""
        from ..runtime.executor import bind  # lazy: Symbol.bind is MXNet's API on a lower layer
        return bind(self, ctx, args, args_grad, grad_req, aux_states, shared_exec=shared_exec)

    def simple_bind(self, ctx, grad_req="write", type_dict=None, stype_dict=None, group2ctx=None,
                    shared_arg_names=None, shared_exec=None, shared_buffer=None, **kwargs):
        """An Executor with every array allocated from the inferred shapes (zeros). Refuses, naming them, when
        some argument or auxiliary state has an unknown dimension (MXNet: "cannot decide shapes")."""
        from ..runtime.executor import simple_bind  # lazy: Symbol.simple_bind is MXNet's API on a lower layer
        return simple_bind(self, ctx, grad_req, type_dict, shared_arg_names=shared_arg_names,
                           shared_exec=shared_exec, shared_buffer=shared_buffer, shapes=kwargs, stype_dict=stype_dict)

    def eval(self, ctx=None, **kwargs):
        """Bind the given arrays, run forward once and return the outputs."""
        executor = self.bind(ctx or current_context(), kwargs)
        return executor.forward()


def _with_plain_keys(attrs):
    """MXNet lists hidden attributes twice: `__lr_mult__` and `lr_mult`."""
    result = dict(attrs)
    for key in HIDDEN_KEYS:
        if hidden_key(key) in attrs:
            result[key] = attrs[hidden_key(key)]
    return result


def _clone(entries, memo):
    def clone(node):
        if id(node) not in memo:
            memo[id(node)] = Node(node.op, node.name, node.attrs, [(clone(s), i) for s, i in node.inputs],
                                  node.versions)
            memo[id(node)].version = node.version
        return memo[id(node)]

    for node in topo_order(entries):
        clone(node)
    return [(memo[id(n)], i) for n, i in entries]


def _settable(attrs):
    """Attributes as MXSymbolSetAttr stores them: string values only, exact hidden keys as `__key__`."""
    result = {}
    for key, value in attrs.items():
        if not isinstance(value, str):
            raise ValueError("Set Attr only accepts string values: %s=%r" % (key, value))
        result[set_attr_key(key, value)] = value
    return result


def Variable(name, attr=None, shape=None, lr_mult=None, wd_mult=None, dtype=None, init=None, stype=None,
             **kwargs):
    """A graph input (data, label or parameter). Shape, dtype, init and learning-rate multipliers are stored
    as MXNet's hidden attributes (`__shape__`, `__dtype__`, `__init__`, `__lr_mult__`, `__wd_mult__`)."""
    if not isinstance(name, str):
        raise TypeError("Expect a string for variable `name`")
    attrs = dict(AttrScope.current.get(attr))
    # stored as str(value) with numpy scalars printed plainly, as MXNet 1.9.1 (numpy < 1.24) stores them:
    # shape=(np.int64(3), 4) -> "(3, 4)", shape=[3, 4] -> "[3, 4]", lr_mult=np.float32(2) -> "2.0"
    if shape is not None:
        attrs["__shape__"] = format_value(shape)
    if lr_mult is not None:
        attrs["__lr_mult__"] = format_value(lr_mult)
    if wd_mult is not None:
        attrs["__wd_mult__"] = format_value(wd_mult)
    if dtype is not None:
        attrs["__dtype__"] = str(DTYPE_NAMES.index(normalize_dtype(dtype).name))
    if init is not None:
        if not isinstance(init, str):
            init = init.dumps()
        attrs["__init__"] = init
    if stype is not None:
        attrs["__storage_type__"] = str(STYPE_CODES.get(stype, stype))
    for key, value in kwargs.items():
        if key.startswith("__") and key.endswith("__"):
            attrs[key] = format_value(value)
        else:
            raise ValueError("Attribute name=%s is not supported. Additional attributes must start and end "
                             "with double underscores, e.g, __yourattr__" % key)
    attrs = _settable(attrs)
    return Symbol([(Node(None, attrs.pop("name", name), attrs), 0)])


var = Variable


def Group(symbols):
    """One symbol whose outputs are the outputs of `symbols`, in order."""
    if not symbols or any(not isinstance(s, Symbol) for s in symbols):
        raise TypeError("Expected a list of symbols as input")
    return Symbol([entry for s in symbols for entry in s._outputs])


def create_symbol(func_name, *args, name=None, attr=None, _hint=None, **kwargs):
    """Apply the registered op `func_name` (an MXNet name or alias) to symbols, as MXNet's generated
    `mx.sym.<Op>` functions do: automatic name from the function name (`_hint`: the name of the function called,
    `det` for mx.sym.linalg.det of `_linalg_det`), missing inputs as `{name}_{input}`."""
    opcls = get_op(func_name)
    for value in args:
        if isinstance(value, Symbol) and len(value) != 1:
            raise MXNetError("%s: cannot compose with a symbol of %d outputs (%s); select one with sym[i]"
                             % (func_name, len(value), ", ".join(value.list_outputs())))
    inputs, named, params = split_call(opcls, args, kwargs, lambda v: isinstance(v, Symbol))
    for key, value in named.items():
        if len(value) != 1:
            raise MXNetError("%s: input '%s' is a symbol of %d outputs; select one with sym[i]"
                             % (func_name, key, len(value)))
    name = NameManager.current.get(name, (_hint or func_name).lower())
    attrs = symbol_attrs(params, AttrScope.current.get(attr))
    op = opcls.from_attrs(attrs, node_name=name)
    slots = bind_inputs(op, name, inputs, named)
    entries = []
    for input_name, value in zip(op.input_names(), slots):
        if value is None:
            # MXNet copies the op's attributes (parameters, lr_mult, ctx_group, ...) onto auto-created inputs.
            var_attrs = dict(attrs)
            var_attrs.update(op.input_attrs(input_name))
            entries.append((Node(None, "%s_%s" % (name, input_name), var_attrs), 0))
        else:
            entries.append(value._outputs[0])
    versions = []
    for (src, _), mutated in zip(entries, [n in op.aux_names() for n in op.input_names()]):
        if mutated and src.is_variable:
            src.version += 1
        versions.append(src.version if mutated and src.is_variable else 0)
    node = Node(op, name, attrs, entries, versions)
    return Symbol([(node, i) for i in range(op.num_visible_outputs())])
