"""The operator registry: one OpDef per MXNet operator, and everything derived from it.

An OpDef subclass is a frozen dataclass whose fields are the MXNet attributes (with MXNet's defaults). It declares
its input / auxiliary / output names, its shape and type rules, and its lowering to ONNX. `mx.sym.<Op>`,
`mx.nd.<Op>`, fluent methods and the JSON loader are all generated from the registry; nothing else branches on an
op's name.
"""
import dataclasses
import functools
import inspect
import typing

from ..base import MXNetError
from ..name import op_attr_key
from .params import REQUIRED, check_choice, format_param, format_value, parse_value, type_name

__all__ = ["OpDef", "register", "get_op", "all_ops", "names", "fluent_methods", "same_shape", "same_type",
           "shape_error", "split_call", "symbol_attrs", "bind_inputs"]

_REGISTRY = {}      # every MXNet name and alias -> OpDef subclass
_CANONICAL = {}     # canonical name -> OpDef subclass
_FLUENT = {}        # method name -> function name in the registry


def shape_error(message):
    return MXNetError(message)


class OpDef:
    """Base of every operator definition.

    Class attributes: `aliases` (other MXNet names: `_Plus`, `_plus`, ...), `variadic` (inputs given as *args and
    counted by the `num_args` attribute), `fluent` (Symbol/NDArray method names that call this op with self as
    the first input), `inputs`/`outputs`/`aux` (static names; override the methods when they depend on attributes).
    """

    op_name: typing.ClassVar[str] = ""
    aliases: typing.ClassVar[tuple] = ()
    variadic: typing.ClassVar[bool] = False
    fluent: typing.ClassVar[tuple] = ()
    inputs: typing.ClassVar[tuple] = ("data",)
    outputs: typing.ClassVar[tuple] = ("output",)
    aux: typing.ClassVar[tuple] = ()
    differentiable: typing.ClassVar[bool] = True    # False: gradient undefined (argmax, comparisons): zeros
    samples: typing.ClassVar[bool] = False          # draws random values: each run gives others (ops/random.py)
    is_loss: typing.ClassVar[bool] = False          # a loss head: backward is MXNet's formula (head_gradients)
    float_only: typing.ClassVar[bool] = False       # an integer first input is refused at bind (no int kernel)
    # Unknown keywords are an error (MXNet: the op has a dmlc parameter parser); None: when the op has parameters.
    # MXNet stores unknown keywords of parser-less ops (relu(x, foo=2) keeps foo='2').
    strict_attrs: typing.ClassVar[typing.Optional[bool]] = None
    # An OpDef class run instead by mx.nd.<op>(..., out=x) when x is the op's first input: MXNet kernels that
    # write the output before they read that input again see the new values (nag_mom_update's momentum).
    in_place_variant: typing.ClassVar[typing.Optional[type]] = None
    _kinds: typing.ClassVar[dict] = {}

    # ----- names -----
    def input_names(self):
        """Input names in order (arguments and auxiliary states); `{node}_{input}` names auto-created ones."""
        if self.variadic:
            return tuple("arg%d" % i for i in range(self.num_args))
        return self.inputs

    def aux_names(self):
        """The inputs that are auxiliary states (mutated by the op, listed by list_auxiliary_states)."""
        return self.aux

    def output_names(self):
        """All outputs (hidden ones included); list_outputs shows the first num_visible_outputs()."""
        return self.outputs

    def count_outputs(self):
        """How many outputs the op has (not `num_outputs`: that is an MXNet attribute of SliceChannel)."""
        return len(self.output_names())

    def num_visible_outputs(self):
        return self.count_outputs()

    def input_attrs(self, input_name):
        """Attributes of an auto-created input variable (e.g. BatchNorm's moving_var `__init__`)."""
        return {}

    # ----- rules -----
    def infer_shape(self, *in_shapes):
        """(input shapes, output shapes) from the known input shapes (None = unknown); None when undecided."""
        return same_shape(self, in_shapes)

    def infer_type(self, *in_types):
        """(input dtypes, output dtypes) from the known input dtypes (numpy dtypes, None = unknown)."""
        return same_type(self, in_types)

    def lower(self, g, *inputs):
        """Emit ONNX nodes through the builder `g`; returns the output value name(s). Training behaviour reads
        `g.is_train` (BatchNorm batch statistics, Dropout masks) and reports aux updates with `g.update_aux`."""
        raise NotImplementedError("%s has no ONNX lowering" % self.op_name)

    def lower_onnx(self, g, *inputs):
        """What the lowering pass calls: `lower`. An op with an MXNet attribute named `lower` (its dataclass field
        hides the method: linalg potrf, trsm, extracttrian, ...) overrides this instead."""
        return self.lower(g, *inputs)

    def replay(self):
        """Sampling ops: an op that recomputes this one's outputs from its inputs followed by its recorded outputs
        (mx.autograd's tape differentiates through it), or None: the recorded outputs are constants there."""
        return None

    def head_gradients(self, g, inputs, outputs):
        """Loss heads only: MXNet's backward as values of the training graph, one per input (None = no
        gradient). Their outputs pass no gradient back and head gradients are ignored, as in MXNet."""
        return None

    # ----- attributes -----
    @classmethod
    def rejects_unknown_attrs(cls):
        return bool(dataclasses.fields(cls)) if cls.strict_attrs is None else cls.strict_attrs

    @classmethod
    def from_attrs(cls, attrs, node_name=None, strict=True):
        """Parse MXNet attribute strings. Unknown non-hidden keys raise when `strict` (op creation) and the op
        has a parameter parser in MXNet. Errors are MXNetErrors worded as dmlc's."""
        where = _where(cls.op_name, node_name, attrs)
        values = {}
        fields = dataclasses.fields(cls)
        names_ = {f.name for f in fields}
        if strict and cls.rejects_unknown_attrs():
            unknown = [k for k in attrs if k not in names_ and not _is_hidden(k)]
            if unknown:
                raise MXNetError("Cannot find argument '%s', Possible Arguments: %s%s"
                                 % (unknown[0], ", ".join(f.name for f in fields), where))
        for field in fields:
            kind = cls._kinds[field.name]
            if field.name in attrs:
                try:
                    values[field.name] = parse_value(kind, attrs[field.name])
                except (ValueError, TypeError):
                    raise MXNetError("Invalid Parameter format for %s expect %s but value='%s'%s"
                                     % (field.name, type_name(kind), attrs[field.name], where)) from None
            elif field.default is REQUIRED and field.default_factory is dataclasses.MISSING:
                raise MXNetError("Required parameter %s of %s is not presented%s"
                                 % (field.name, type_name(kind), where))
            if field.name in values:
                check_choice(cls.op_name, field, values[field.name])
        try:
            op = cls(**values)
        except (ValueError, TypeError, MXNetError) as err:
            raise MXNetError("Invalid parameters for operator %s%s: %s" % (cls.op_name, where, err)) from None
        return op

    @classmethod
    def param_names(cls):
        return tuple(f.name for f in dataclasses.fields(cls))

    def params(self):
        """The attribute values, as a dict of Python values."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def _is_hidden(key):
    """dmlc's kAllowHidden: `__name__` keys pass every parameter parser."""
    return len(key) > 4 and key.startswith("__") and key.endswith("__")


def _where(op_name, node_name, attrs):
    """dmlc's error suffix: `, in operator FullyConnected(name="fc", num_hidden="4")`."""
    shown = "".join(', %s="%s"' % item for item in attrs.items())
    return ', in operator %s(name="%s"%s)' % (op_name, node_name or "", shown)


def same_shape(op, in_shapes):
    """Every input and the outputs share one shape (elementwise ops)."""
    known = [s for s in in_shapes if s is not None]
    if not known:
        return None
    shape = known[0]
    for name, other in zip(op.input_names(), in_shapes):
        if other is not None and tuple(other) != tuple(shape):
            raise MXNetError("%s: input '%s' has shape %s but the inputs must all have shape %s"
                             % (op.op_name, name, tuple(other), tuple(shape)))
    return [shape] * len(in_shapes), [shape] * op.count_outputs()


def same_type(op, in_types):
    """Every input and the outputs share one dtype."""
    known = [t for t in in_types if t is not None]
    if not known:
        return None
    return [known[0]] * len(in_types), [known[0]] * op.count_outputs()


def register(cls=None, *, name=None):
    """Class decorator: make `cls` a frozen dataclass and register it under its name and aliases."""

    def wrap(cls):
        if not dataclasses.is_dataclass(cls) or "__dataclass_fields__" not in cls.__dict__:
            cls = dataclasses.dataclass(frozen=True)(cls)
        cls.op_name = name or cls.__name__
        cls._kinds = typing.get_type_hints(cls)
        if cls.op_name in _CANONICAL:
            raise MXNetError("operator %s is registered twice" % cls.op_name)
        _CANONICAL[cls.op_name] = cls
        for alias in (cls.op_name,) + tuple(cls.aliases):
            _REGISTRY[alias] = cls
        for method in cls.fluent:
            _FLUENT[method] = cls.op_name
        return cls

    return wrap(cls) if cls is not None else wrap


def get_op(name):
    """The OpDef class registered under an MXNet name or alias; MXNetError when unknown."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise MXNetError("Operator '%s' is not registered in onnxsym" % name) from None


def all_ops():
    """{canonical name: OpDef class}."""
    return dict(_CANONICAL)


def names():
    """Every registered name and alias -> OpDef class."""
    return dict(_REGISTRY)


def fluent_methods():
    """{method name: op name} for Symbol/NDArray fluent methods."""
    return dict(_FLUENT)


@functools.lru_cache(maxsize=None)
def possible_inputs(opcls):
    """Every input name the op can have under some attributes, in order: the parameters of its lowering after the
    builder (ops whose inputs depend on attributes, Convolution's bias), then any other declared input."""
    lowering = opcls.lower_onnx if opcls.lower_onnx is not OpDef.lower_onnx else opcls.lower
    names_ = [p.name for p in list(inspect.signature(lowering).parameters.values())[2:]
              if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return tuple(names_) + tuple(n for n in opcls.inputs if n not in names_)


def split_call(opcls, args, kwargs, is_input):
    """Split an op call into input values (positional + by name) and attribute strings, as MXNet's generated
    functions do: positional inputs first, then positional attributes in declaration order. Every keyword is an
    attribute (`out=` is the caller's); values are stored as MXNet 1.9.1 stores them (params.format_param)."""
    inputs, params = [], {}
    positional_params = [f for f in opcls.param_names() if f not in kwargs and f != "num_args"]
    for value in args:
        if is_input(value) or (value is None and not params):
            inputs.append(value)
        else:
            if not positional_params:
                raise TypeError("%s() got too many positional arguments" % opcls.op_name)
            params[positional_params.pop(0)] = value
    named_inputs = {}
    for key, value in kwargs.items():
        if is_input(value):
            named_inputs[key] = value
        elif value is None and key in possible_inputs(opcls):
            continue            # an input left out by keyword (MXNet's generated functions skip None inputs)
        elif key != "out":
            params[key] = value
    if opcls.variadic and "num_args" not in params:
        params["num_args"] = len(inputs) + len(named_inputs)
    return inputs, named_inputs, {k: format_param(opcls._kinds.get(k), k, v) for k, v in params.items()}


def symbol_attrs(params, scope_attrs):
    """The attributes MXNet stores on an op node (MXSymbolCreateAtomicSymbol): the call's parameters, overridden by
    the `attr=` dict and AttrScope values (MXNet's generated functions pass those first to a first-wins map), each
    value as str() gives it, hidden keys renamed (`lr_mult` -> `__lr_mult__`, name.op_attr_key)."""
    merged = dict(params)
    merged.update((key, format_value(value)) for key, value in (scope_attrs or {}).items())
    attrs = {}
    for key, value in merged.items():
        attrs.setdefault(op_attr_key(key, value), value)
    return attrs


def bind_inputs(op, node_name, inputs, named_inputs):
    """Match positional and named inputs to op.input_names(); missing ones are None."""
    names_ = op.input_names()
    inputs = list(inputs)
    while len(inputs) > len(names_) and inputs[-1] is None:
        inputs.pop()        # None for an input the op does not have here (Convolution(x, w, None, no_bias=True))
    if len(inputs) > len(names_):
        raise MXNetError("Operator %s (node '%s') takes %d inputs (%s) but %d were given"
                         % (op.op_name, node_name, len(names_), ", ".join(names_), len(inputs)))
    slots = list(inputs) + [None] * (len(names_) - len(inputs))
    for key, value in named_inputs.items():
        if key not in names_:
            raise MXNetError("Operator %s (node '%s') has no input '%s' (inputs: %s)"
                             % (op.op_name, node_name, key, ", ".join(names_)))
        index = names_.index(key)
        if slots[index] is not None:
            raise TypeError("%s() got multiple values for input '%s'" % (op.op_name, key))
        slots[index] = value
    return slots
