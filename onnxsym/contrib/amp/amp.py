"""`mx.contrib.amp`: MXNet 1.9.1's automatic mixed precision for the symbolic API.

    from mxnet.contrib.amp import amp
    sym16 = amp.convert_symbol(sym)                       # amp_cast / amp_multicast nodes where MXNet puts them
    sym16, args, auxs = amp.convert_model(sym, args, auxs, cast_optional_params=True)

`convert_symbol` is MXNet's ReducePrecision graph pass (src/nnvm/low_precision_pass.cc, with the dtype bookkeeping
of MXReducePrecisionSymbol and AMPInferUnknown) over onnxsym's graph: the same nodes, names and `__dtype__`
attributes. `init()` patches the op functions of mx.sym and mx.nd in place as MXNet does (casts inserted when a
graph is built or an op runs). float16 only: onnxsym has no bfloat16 arrays. The Gluon parts (init_trainer,
scale_loss, unscale, convert_hybrid_block) raise GluonNotProvidedError.
"""
import contextlib
import logging

import numpy as np

from . import lists
from .loss_scaler import LossScaler
from ... import ndarray, symbol
from ...base import MXNetError, normalize_dtype
from ...gluon import GluonNotProvidedError
from ...runtime.ndarray import NDArray
from ...symbol.node import Node
from ...symbol.symbol import Symbol
from ._reduce_precision import input_dtype_attrs, reduce_precision

__all__ = ["init", "init_trainer", "scale_loss", "unscale", "convert_model", "convert_hybrid_block",
           "list_lp16_ops", "list_fp32_ops", "list_lp16_fp32_ops", "list_conditional_fp32_ops",
           "list_widest_type_cast", "list_loss_output_functions", "list_lp16_use_fp32_params", "convert_symbol"]

_FLOAT16, _FLOAT32 = np.dtype(np.float16), np.dtype(np.float32)

# MXNet operators that declare their output names (FListOutputNames, or legacy OperatorProperty ops): MXNet names
# a cast of their output `<node>_<output name>_amp_cast_<dtype>`; any other op's output i gives `<node>_<i>_...`.
_NAMED_OUTPUT_OPS = frozenset((
    "Activation", "BatchNorm", "Concat", "Convolution", "CTCLoss", "Custom", "Deconvolution", "Dropout",
    "FullyConnected", "GroupNorm", "LayerNorm", "LeakyReLU", "LRN", "Pooling", "RNN", "SoftmaxActivation",
    "SoftmaxOutput", "UpSampling", "col2im", "elemwise_add", "im2col", "softmax", "softmin", "_rnn_param_concat",
    "_contrib_BatchNormWithReLU", "_contrib_hawkesll", "_contrib_index_array", "_contrib_ROIAlign",
    "_contrib_RROIAlign", "_contrib_interleaved_matmul_encdec_qk", "_contrib_interleaved_matmul_encdec_valatt",
    "_contrib_interleaved_matmul_selfatt_qk", "_contrib_interleaved_matmul_selfatt_valatt",
    # legacy operators (MXNET_REGISTER_OP_PROPERTY): ListOutputs
    "BatchNorm_v1", "BilinearSampler", "Convolution_v1", "Correlation", "Crop", "GridGenerator",
    "IdentityAttachKLSparseReg", "InstanceNorm", "L2Normalization", "MakeLoss", "Pad", "Pooling_v1", "ROIPooling",
    "SVMOutput", "SequenceLast", "SequenceMask", "SequenceReverse", "SliceChannel", "SpatialTransformer",
    "SwapAxis", "_contrib_DeformableConvolution", "_contrib_DeformablePSROIPooling", "_contrib_MultiBoxDetection",
    "_contrib_MultiBoxPrior", "_contrib_MultiBoxTarget", "_contrib_MultiProposal", "_contrib_PSROIPooling",
    "_contrib_Proposal", "_contrib_SyncBatchNorm", "_contrib_count_sketch", "_contrib_fft", "_contrib_ifft"))


def _check_target(target_dtype):
    if target_dtype in ("bfloat16",):
        raise MXNetError("amp: target_dtype bfloat16 is not supported by onnxsym (numpy and its NDArrays have no "
                         "bfloat16); use target_dtype='float16'")
    assert target_dtype in ("float16", np.float16, _FLOAT16), \
        "AMP currently supports only float16 or bfloat16 as a target_dtype"


# ---------------------------------------------------------------- op lists
def _list_getter(function_name, list_name, doc):
    """MXNet's list_* function returning the float16 list `list_name` (lists/symbol_fp16.py)."""
    def getter(target_dtype):
        _check_target(target_dtype)
        return getattr(lists.symbol_fp16, list_name)
    getter.__name__ = getter.__qualname__ = function_name
    getter.__doc__ = doc
    return getter


list_lp16_ops = _list_getter("list_lp16_ops", "FP16_FUNCS", "Get the default list of LP16 ops for AMP")
list_fp32_ops = _list_getter("list_fp32_ops", "FP32_FUNCS", "Get the default list of FP32 ops for AMP")
list_lp16_fp32_ops = _list_getter("list_lp16_fp32_ops", "FP16_FP32_FUNCS",
                                  "Get the default list of ops which run in both LP16 and FP32")
list_conditional_fp32_ops = _list_getter("list_conditional_fp32_ops", "CONDITIONAL_FP32_FUNCS",
                                         "Get the conditional fp32 ops list")
list_widest_type_cast = _list_getter("list_widest_type_cast", "WIDEST_TYPE_CASTS", "Get the widest type cast ops list")
list_loss_output_functions = _list_getter("list_loss_output_functions", "LOSS_OUTPUT_FUNCTIONS",
                                          "Get loss function list")


def list_lp16_use_fp32_params(target_dtype):
    """Get the params restrict for LP16 (None for float16, as in MXNet)"""
    _check_target(target_dtype)
    return None


# ---------------------------------------------------------------- init: patching mx.sym / mx.nd
def _cast_symbol_NDArray(s, dtype):
    """MXNet's rule: a Symbol always gets an amp_cast; an NDArray on the CPU only from float32 (MXNet's CPU
    low-precision type is bfloat16, so float16 arrays stay), on a GPU from float16/float32."""
    dtype = np.dtype(dtype)
    if isinstance(s, Symbol):
        return symbol.amp_cast(s, dtype=dtype.name)
    if isinstance(s, NDArray) and np.dtype(s.dtype) != dtype:
        castable = (_FLOAT32,) if s.context.device_type == "cpu" else (_FLOAT16, _FLOAT32)
        if np.dtype(s.dtype) in castable:
            return ndarray.amp_cast(s, dtype=dtype.name)
    return s


def _same_face(new, f):
    new.__name__, new.__doc__ = f.__name__, f.__doc__
    new.__module__ = getattr(f, "__module__", None)
    return new


def _ndarray_wrapper(f, target_dtype, cond_arg=None):
    def wrapped(*args, **kwargs):
        if cond_arg is not None and (cond_arg[0] not in kwargs or kwargs[cond_arg[0]] not in cond_arg[1]):
            return f(*args, **kwargs)
        args = tuple(_cast_symbol_NDArray(x, target_dtype) for x in args)
        kwargs = {k: _cast_symbol_NDArray(v, target_dtype) for k, v in kwargs.items()}
        return f(*args, **kwargs)
    return _same_face(wrapped, f)


def _symbol_wrapper(f, target_dtype, cond_arg=None):
    """Build the node, then rebuild it (same name and attributes) on amp_cast'ed inputs; auxiliary states stay."""
    def wrapped(*args, **kwargs):
        if cond_arg is not None and (cond_arg[0] not in kwargs or kwargs[cond_arg[0]] not in cond_arg[1]):
            return f(*args, **kwargs)
        sym = f(*args, **kwargs)
        node = sym.outputs[0][0]
        inputs = [entry if is_aux else _cast_symbol_NDArray(Symbol([entry]), target_dtype).outputs[0]
                  for entry, is_aux in zip(node.inputs, node.aux_flags())]
        rebuilt = Node(node.op, node.name, node.attrs, inputs, node.versions)
        return Symbol([(rebuilt, i) for _, i in sym.outputs])
    return _same_face(wrapped, f)


def _symbol_widest_wrapper(f, target_dtype):
    def wrapped(*args, **kwargs):
        args = list(args)
        found = [(args, i, a) for i, a in enumerate(args) if isinstance(a, (Symbol, NDArray))]
        found += [(kwargs, k, a) for k, a in kwargs.items() if isinstance(a, (Symbol, NDArray))]
        if not any(isinstance(a, Symbol) for _, _, a in found):
            widest = target_dtype
            if any(np.dtype(a.dtype) == _FLOAT32 for _, _, a in found):
                widest = _FLOAT32
            for holder, key, a in found:
                if np.dtype(a.dtype) != widest and np.dtype(a.dtype) == target_dtype:
                    holder[key] = ndarray.amp_cast(a, dtype=np.dtype(widest).name)
        elif found:
            casted = symbol.amp_multicast(*[a for _, _, a in found], num_outputs=len(found))
            for (holder, key, _), value in zip(found, casted):
                holder[key] = value
        return f(*args, **kwargs)
    return _same_face(wrapped, f)


def _function_home(name, module):
    """(function name, namespace) of op `name` in mx.sym / mx.nd: `_contrib_X` is contrib.X, `_linalg_X`
    linalg.X, other `_X` names live in _internal (MXNet's _get_fun_to_wrap)."""
    for prefix in ("_contrib_", "_linalg_"):
        if name.startswith(prefix):
            return name[len(prefix):], getattr(module, prefix[1:-1])
    if name.startswith("_"):
        return name, module._internal
    return name, module


def _wrap_functions(module, target_dtype, target_precision_ops, conditional_fp32_ops, fp32_ops):
    wrapper = _symbol_wrapper if module is symbol else _ndarray_wrapper
    plans = [(name, lambda f: wrapper(f, target_dtype)) for name in
             (target_precision_ops if target_precision_ops is not None else list_lp16_ops(target_dtype))]
    plans += [(name, lambda f: wrapper(f, _FLOAT32)) for name in
              (fp32_ops if fp32_ops is not None else list_fp32_ops(target_dtype))]
    for name, arg, values in (conditional_fp32_ops if conditional_fp32_ops is not None
                              else list_conditional_fp32_ops(target_dtype)):
        plans.append((name, lambda f, cond=(arg, values): wrapper(f, _FLOAT32, cond_arg=cond)))
    plans += [(name, lambda f: _symbol_widest_wrapper(f, target_dtype))
              for name in list_widest_type_cast(target_dtype)]
    for name, wrap in plans:
        func_name, home = _function_home(name, module)
        setattr(home, func_name, wrap(getattr(home, func_name)))


def _wrap_loss_output_functions(module, scaler, target_dtype):
    def wrap(f):
        if module is ndarray:
            def wrapped(*args, **kwargs):
                kwargs["grad_scale"] = kwargs.get("grad_scale", 1.0) * scaler.loss_scale
                return f(*args, **kwargs)
        else:
            def wrapped(*args, **kwargs):
                logging.warning("%s does not support dynamic loss scaling in symbolic and hybridized execution.",
                                f.__name__)
                return f(*args, **kwargs)
        return _same_face(wrapped, f)

    for name in list_loss_output_functions(target_dtype):
        if hasattr(module, name):
            setattr(module, name, wrap(getattr(module, name)))


_amp_initialized = False
_loss_scaler = None


def init(target_dtype="float16", target_precision_ops=None, conditional_fp32_ops=None, fp32_ops=None):
    """Initialize AMP (automatic mixed precision). This needs to be done before model creation.

    Patches the op functions of mx.sym and mx.nd in place, as MXNet 1.9.1 does: functions of
    `target_precision_ops` (default list_lp16_ops) get their inputs amp_cast to float16, `fp32_ops` (default
    list_fp32_ops) to float32, `conditional_fp32_ops` entries `(function, parameter, values)` to float32 when
    called with one of those parameter values, and list_widest_type_cast functions an amp_multicast of their
    inputs; the loss heads of list_loss_output_functions scale grad_scale by the loss scale (mx.nd) or warn
    (mx.sym). A second call does nothing (MXNet logs nothing either).

    Parameters
    ----------
    target_dtype : {'float16'}
        Target low precision type ('bfloat16', which MXNet also accepts, raises: onnxsym has no bfloat16).
    target_precision_ops : list of str, optional
    conditional_fp32_ops : list of (str, str, list of str), optional
    fp32_ops : list of str, optional

    Example
    -------
    >>> amp.init()
    >>> fc = mx.sym.FullyConnected(mx.sym.var('data'), num_hidden=4, name='fc')   # inputs amp_cast to float16
    """
    global _amp_initialized, _loss_scaler
    if _amp_initialized:
        return
    _check_target(target_dtype)
    _amp_initialized = True
    logging.info("Using AMP")
    target = _FLOAT16
    _wrap_functions(symbol, target, target_precision_ops, conditional_fp32_ops, fp32_ops)
    _wrap_functions(ndarray, target, target_precision_ops, conditional_fp32_ops, fp32_ops)
    _loss_scaler = LossScaler()
    _wrap_loss_output_functions(ndarray, _loss_scaler, target)
    _wrap_loss_output_functions(symbol, _loss_scaler, target)


def init_trainer(optimizer_or_trainer):
    """Gluon only (a Trainer's dynamic loss scaling): not provided."""
    raise GluonNotProvidedError("mx.contrib.amp.init_trainer (AMP's dynamic loss scaling of a gluon.Trainer)")


@contextlib.contextmanager
def scale_loss(loss, optimizer_or_trainer):
    """Gluon only (scales a loss for a gluon.Trainer): not provided."""
    raise GluonNotProvidedError("mx.contrib.amp.scale_loss (AMP's loss scaling for a gluon.Trainer)")
    yield   # pragma: no cover  (a generator, as MXNet's context manager)


def unscale(optimizer_or_trainer):
    """Gluon only (unscales a gluon.Trainer's gradients): not provided."""
    raise GluonNotProvidedError("mx.contrib.amp.unscale (unscaling a gluon.Trainer's gradients)")


def convert_hybrid_block(block, target_dtype="float16", target_dtype_ops=None, fp32_ops=None,
                         conditional_fp32_ops=None, excluded_sym_names=None, ctx=None, cast_optional_params=False):
    """Gluon only (a HybridBlock): not provided; convert the exported symbol with convert_model instead."""
    raise GluonNotProvidedError("mx.contrib.amp.convert_hybrid_block (use amp.convert_model on the exported "
                                "symbol and parameters)")

# ---------------------------------------------------------------- graph conversion
def convert_symbol(sym, target_dtype="float16", target_dtype_ops=None, fp32_ops=None, conditional_fp32_ops=None,
                   excluded_sym_names=None, data_names=None, cast_optional_params=False):
    """Given a symbol object representing a neural network of data type FP32 and target_dtype, add cast layers
    according to the op lists (target_dtype_ops, fp32_ops, conditional_fp32_ops) if provided, otherwise use the
    default lists provided by the framework.

    Inputs of target_dtype ops get `<input>_amp_cast_float16` nodes, inputs of fp32 ops (and of the nodes named
    in excluded_sym_names) `..._amp_cast_float32`, widest-type ops an `<first input>_amp_multicast` unless all
    their input dtypes are known; outputs not known to be float32 are cast back to it. Mirrors MXNet 1.9.1's
    ReducePrecision pass: the same nodes, names, and `__dtype__` attributes on the inputs.

    Parameters
    ----------
    sym : Symbol
        FP32 neural network symbol
    target_dtype : str, default 'float16'
    target_dtype_ops, fp32_ops : list of str, optional
        Override the lists of operator names cast to target_dtype / to FP32 (defaults: list_lp16_ops,
        list_fp32_ops).
    conditional_fp32_ops : list of (str, str, list of str), optional
        (operator name, parameter name, parameter values that make the operator run in FP32).
    excluded_sym_names : list of str, optional
        Names of nodes that stay in FP32.
    data_names : list of str, optional
        The model's data inputs (default: the inputs without a `__dtype__` attribute).
    cast_optional_params : bool, default False
        Leave parameters feeding target_dtype ops uncast (convert_model then casts them to float16).

    Example
    -------
    >>> fc = mx.sym.FullyConnected(mx.sym.var('data'), num_hidden=4, name='fc')
    >>> amp.convert_symbol(fc).get_internals().list_outputs()
    ['data', 'data_amp_cast_float16_output', 'fc_weight', 'fc_weight_amp_cast_float16_output', 'fc_bias',
     'fc_bias_amp_cast_float16_output', 'fc_output', 'fc_output_amp_cast_float32_output']
    """
    assert isinstance(sym, Symbol), "First argument to convert_symbol should be Symbol"
    assert target_dtype in ["float16", "bfloat16"], "Only target_dtype float16 and bfloat16 are supported currently"
    _check_target(target_dtype)
    if target_dtype_ops is not None:
        assert isinstance(target_dtype_ops, list), "target_dtype_ops should be a list of strs"
    else:
        target_dtype_ops = list_lp16_ops(target_dtype)
    if fp32_ops is not None:
        assert isinstance(fp32_ops, list), "fp32_ops should be a list of strs"
    else:
        fp32_ops = list_fp32_ops(target_dtype)
    if conditional_fp32_ops is not None:
        assert isinstance(conditional_fp32_ops, list), "conditional_fp32_ops should be a list"
    else:
        conditional_fp32_ops = list_conditional_fp32_ops(target_dtype)
    conditional = {}
    for entry in conditional_fp32_ops:
        assert isinstance(entry[0], str) and isinstance(entry[1], str) and isinstance(entry[2], list), \
            "conditional_fp32_ops should be a list of (str, str, list of str)"
        conditional.setdefault(entry[0], {}).setdefault(entry[1], []).extend(entry[2])
    if excluded_sym_names is not None:
        assert isinstance(excluded_sym_names, list), "excluded_sym_names should be a list of strs"
    else:
        excluded_sym_names = []
    conditional_names = [entry[0] for entry in conditional_fp32_ops]
    for first, second, label in ((target_dtype_ops, fp32_ops, "target_dtype_ops and fp32_ops"),
                                 (target_dtype_ops, conditional_names, "target_dtype_ops and conditional_fp32_ops"),
                                 (conditional_names, fp32_ops, "fp32_ops and conditional_fp32_ops")):
        common = set(first) & set(second)
        assert not common, "Ops cannot be in two or more lists. Common ops in %s %s" % (label, common)
    known = set(list_lp16_ops(target_dtype) + list_fp32_ops(target_dtype) + list_lp16_fp32_ops(target_dtype)
                + [entry[0] for entry in list_conditional_fp32_ops(target_dtype)])
    illegal = set(target_dtype_ops + fp32_ops + conditional_names) - known
    assert not illegal, ("Can only choose ops from one of the three lists for lp16_ops and fp32_ops 1. "
                         "amp.list_lp16_ops(target_dtype) 2. amp.list_fp32_ops(target_dtype) 3. "
                         "amp.list_lp16_fp32_ops(target_dtype) 4. amp.list_conditional_fp32_ops(target_dtype) "
                         "Op %s not in any of them" % illegal)
    attr_dict = sym.attr_dict()
    if data_names is None:
        data_names = [name for name in sym.list_inputs() if "__dtype__" not in attr_dict.get(name, {})]
    model_params = set(sym.list_inputs()) - set(data_names)
    heads = reduce_precision(sym.outputs, _FLOAT16, target_dtype_ops, fp32_ops,
                             list_widest_type_cast(target_dtype), conditional, excluded_sym_names, data_names,
                             cast_optional_params, _NAMED_OUTPUT_OPS)
    input_dtype_attrs(heads, _FLOAT16, data_names, model_params, cast_optional_params)
    return Symbol(heads)


def _cast_params(params, names, attr_dict):
    for name in names:
        code = attr_dict.get(name, {}).get("__dtype__")
        if code is not None and code != "-1" and name in params:
            params[name] = params[name].astype(normalize_dtype(int(code)))


def convert_model(sym, arg_params, aux_params, target_dtype="float16", target_dtype_ops=None, fp32_ops=None,
                  conditional_fp32_ops=None, excluded_sym_names=None, cast_optional_params=False):
    """API for converting a model from FP32 model to a mixed precision model: convert_symbol with the inputs that
    are not parameters as data_names, then each parameter cast to the dtype the converted graph gives it
    (float16 for the ones feeding float16 ops when cast_optional_params, else float32).

    Parameters
    ----------
    sym : Symbol
    arg_params, aux_params : dict of str to NDArray
    target_dtype, target_dtype_ops, fp32_ops, conditional_fp32_ops, excluded_sym_names, cast_optional_params
        As in convert_symbol.

    Returns
    -------
    (Symbol, dict, dict): the converted symbol and the (updated) arg_params and aux_params.
    """
    if excluded_sym_names is None:
        excluded_sym_names = []
    assert target_dtype in ["float16", "bfloat16"], "Only target_dtype float16 and bfloat16 are supported currently"
    assert isinstance(sym, Symbol), "First argument to convert_model should be Symbol"
    assert isinstance(arg_params, dict), "Second argument to convert_model should be a dict of name to ndarray"
    assert isinstance(aux_params, dict), "Third argument to convert_model should be a dict of name to ndarray"
    param_names = list(arg_params) + list(aux_params)
    data_names = [name for name in sym.list_inputs() if name not in set(param_names)]
    sym = convert_symbol(sym, target_dtype, target_dtype_ops, fp32_ops, conditional_fp32_ops, excluded_sym_names,
                         data_names, cast_optional_params)
    attr_dict = sym.attr_dict()
    _cast_params(arg_params, sym.list_arguments(), attr_dict)
    _cast_params(aux_params, sym.list_auxiliary_states(), attr_dict)
    return sym, arg_params, aux_params

