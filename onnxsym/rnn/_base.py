"""The cell base (MXNet 1.x's BaseRNNCell, RNNParams) and the sequence helpers every cell uses."""
from .. import ndarray, symbol
from ..base import MXNetError, string_types

__all__ = ["RNNParams", "BaseRNNCell"]


class RNNCellError(MXNetError, AssertionError):
    """A cell used the wrong way: MXNet asserts (AssertionError), which this is too."""


def _check(condition, message):
    if not condition:
        raise RNNCellError(message)


def _cells_state_info(cells):
    return [info for cell in cells for info in cell.state_info]


def _cells_begin_state(cells, **kwargs):
    return [state for cell in cells for state in cell.begin_state(**kwargs)]


def _cells_unpack_weights(cells, args):
    for cell in cells:
        args = cell.unpack_weights(args)
    return args


def _cells_pack_weights(cells, args):
    for cell in cells:
        args = cell.pack_weights(args)
    return args


def _normalize_sequence(length, inputs, layout, merge, in_layout=None):
    """`inputs` as one Symbol with time on layout's T axis (merge True), a list of `length` per-step Symbols
    (merge False), or as given (merge None); and that time axis."""
    _check(inputs is not None, "unroll(inputs=None) has been deprecated. "
                               "Please create input variables outside unroll.")
    _check(isinstance(layout, string_types) and "T" in layout, "Invalid layout %r: it must name the time axis T "
                                                                "('NTC' or 'TNC')" % (layout,))
    axis = layout.find("T")
    in_axis = in_layout.find("T") if in_layout is not None else axis
    if isinstance(inputs, symbol.Symbol):
        if merge is False:
            _check(len(inputs.list_outputs()) == 1,
                   "unroll doesn't allow grouped symbol as input. Please convert to list with list(inputs) first "
                   "or let unroll handle splitting.")
            inputs = list(symbol.split(inputs, axis=in_axis, num_outputs=length, squeeze_axis=1))
    else:
        _check(isinstance(inputs, (list, tuple)) and all(isinstance(i, symbol.Symbol) for i in inputs),
               "unroll's inputs must be a Symbol or a list of Symbols, not %s" % type(inputs).__name__)
        _check(length is None or len(inputs) == length,
               "unroll(length=%s) got %d input steps" % (length, len(inputs)))
        if merge is True:
            inputs = symbol.Concat(*[symbol.expand_dims(i, axis=axis) for i in inputs], dim=axis)
            in_axis = axis
    if isinstance(inputs, symbol.Symbol) and axis != in_axis:
        inputs = symbol.swapaxes(inputs, dim0=axis, dim1=in_axis)
    return inputs, axis


class RNNParams:
    """The Variables of one or more cells, created on first `get` as `<prefix><name>` and shared afterwards.

    Parameters
    ----------
    prefix : str
        Prepended to every variable's name.
    """

    def __init__(self, prefix=""):
        self._prefix = prefix
        self._params = {}

    def get(self, name, **kwargs):
        """The Variable `<prefix><name>`, made with `kwargs` (passed to mx.sym.Variable) if it is new."""
        name = self._prefix + name
        if name not in self._params:
            self._params[name] = symbol.Variable(name, **kwargs)
        return self._params[name]


class BaseRNNCell:
    """Abstract recurrent cell: `cell(inputs, states)` is one step, `unroll` many.

    Parameters
    ----------
    prefix : str
        Prefix of the layers' names (and of the weights' names when `params` is None).
    params : RNNParams or None
        Container to share weights with other cells; a new one with `prefix` when None.
    """

    def __init__(self, prefix="", params=None):
        if params is None:
            params = RNNParams(prefix)
            self._own_params = True
        else:
            self._own_params = False
        self._prefix = prefix
        self._params = params
        self._modified = False
        self.reset()

    def reset(self):
        """Reset the step counters before building another graph with this cell."""
        self._init_counter = -1
        self._counter = -1
        for cell in getattr(self, "_cells", ()):
            cell.reset()

    def __call__(self, inputs, states):
        """One time step: (output Symbol, list of next states)."""
        raise NotImplementedError()

    @property
    def params(self):
        """The RNNParams of this cell (asking for them marks them shared, as MXNet does)."""
        self._own_params = False
        return self._params

    @property
    def state_info(self):
        """Shape (0 for the batch) and `__layout__` of each state."""
        raise NotImplementedError()

    @property
    def state_shape(self):
        """Shape of each state."""
        return [info["shape"] for info in self.state_info]

    @property
    def _gate_names(self):
        return ()

    def begin_state(self, func=symbol.zeros, **kwargs):
        """The start states, `func(name='<prefix>begin_state_<n>', shape=..., __layout__=..., **kwargs)` each.

        Parameters
        ----------
        func : callable, default mx.sym.zeros
            mx.sym.zeros, mx.sym.uniform, mx.sym.Variable (to feed the states as inputs), ...
        **kwargs
            More arguments of `func` (dtype, low, ...).
        """
        _check(not self._modified, "After applying modifier cells (e.g. DropoutCell) the base cell cannot be "
                                   "called directly. Call the modifier cell instead.")
        states = []
        for info in self.state_info:
            self._init_counter += 1
            if info is not None:
                kwargs.update(info)
            states.append(func(name="%sbegin_state_%d" % (self._prefix, self._init_counter), **kwargs))
        return states

    def unpack_weights(self, args):
        """A copy of `args` (name -> NDArray) with this cell's i2h/h2h weights and biases split per gate
        (`<prefix>i2h_f_weight`, ...). The inverse of `pack_weights`."""
        args = args.copy()
        if not self._gate_names:
            return args
        h = self._num_hidden
        for group in ("i2h", "h2h"):
            weight = _pop(args, "%s%s_weight" % (self._prefix, group))
            bias = _pop(args, "%s%s_bias" % (self._prefix, group))
            for j, gate in enumerate(self._gate_names):
                args["%s%s%s_weight" % (self._prefix, group, gate)] = weight[j * h:(j + 1) * h].copy()
                args["%s%s%s_bias" % (self._prefix, group, gate)] = bias[j * h:(j + 1) * h].copy()
        return args

    def pack_weights(self, args):
        """A copy of `args` with this cell's per-gate weights and biases joined (`<prefix>i2h_weight`, ...)."""
        args = args.copy()
        if not self._gate_names:
            return args
        for group in ("i2h", "h2h"):
            for kind in ("weight", "bias"):
                parts = [_pop(args, "%s%s%s_%s" % (self._prefix, group, gate, kind)) for gate in self._gate_names]
                args["%s%s_%s" % (self._prefix, group, kind)] = ndarray.concatenate(parts)
        return args

    def unroll(self, length, inputs, begin_state=None, layout="NTC", merge_outputs=None):
        """Unroll the cell over `length` steps.

        Parameters
        ----------
        length : int
            Number of steps.
        inputs : Symbol or list of Symbol
            One Symbol shaped (batch, length, ...) for layout 'NTC' or (length, batch, ...) for 'TNC', or a list
            of `length` Symbols shaped (batch, ...).
        begin_state : list of Symbol, optional
            Start states (`begin_state()` when None).
        layout : str, default 'NTC'
        merge_outputs : bool or None
            True: one Symbol with the time axis of `layout`; False: a list of per-step Symbols; None: whichever
            is natural for the cell.

        Returns
        -------
        outputs : Symbol or list of Symbol
        states : list of Symbol
        """
        self.reset()
        inputs, _ = _normalize_sequence(length, inputs, layout, False)
        states = self.begin_state() if begin_state is None else begin_state
        outputs = []
        for i in range(length):
            output, states = self(inputs[i], states)
            outputs.append(output)
        outputs, _ = _normalize_sequence(length, outputs, layout, merge_outputs)
        return outputs, states

    def _get_activation(self, inputs, activation, **kwargs):
        """`activation` applied to inputs: an act_type name for mx.sym.Activation, or a callable."""
        if isinstance(activation, string_types):
            return symbol.Activation(inputs, act_type=activation, **kwargs)
        return activation(inputs, **kwargs)


def _pop(args, name):
    if name not in args:
        raise RNNCellError("Parameter %r is missing (have: %s)" % (name, ", ".join(sorted(args))))
    return args.pop(name)
