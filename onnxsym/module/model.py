"""`mx.model`: MXNet checkpoints (`prefix-symbol.json` + `prefix-%04d.params` with `arg:`/`aux:` keys)."""
import logging
from collections import namedtuple

from .. import ndarray as nd, symbol as sym
from ..base import MXNetError
from ..context import cpu

__all__ = ["BatchEndParam", "FeedForward", "save_checkpoint", "load_checkpoint", "load_params"]

BatchEndParam = namedtuple("BatchEndParams", ["epoch", "nbatch", "eval_metric", "locals"])


def save_checkpoint(prefix, epoch, symbol, arg_params, aux_params, remove_amp_cast=True):
    """Write `prefix-symbol.json` (when a symbol is given) and `prefix-%04d.params`, both atomically."""
    if symbol is not None:
        symbol.save("%s-symbol.json" % prefix, remove_amp_cast=remove_amp_cast)
    param_name = "%s-%04d.params" % (prefix, epoch)
    nd.save(param_name, param_dict(arg_params, aux_params))
    logging.info('Saved checkpoint to "%s"', param_name)


def param_dict(arg_params, aux_params):
    """{'arg:name': array, 'aux:name': array}: how checkpoints name parameters."""
    save_dict = {("arg:%s" % k): v.as_in_context(cpu()) for k, v in arg_params.items()}
    save_dict.update({("aux:%s" % k): v.as_in_context(cpu()) for k, v in aux_params.items()})
    return save_dict


class ParamNameError(MXNetError, ValueError):
    """A parameter name without an `arg:`/`aux:` prefix: an MXNetError like every loader error, and the
    ValueError MXNet's Module.load_params raises, for callers that catch that."""


def split_params(fname):
    """(arg_params, aux_params) of a parameter file with `arg:`/`aux:` names; an empty file gives empty dicts
    (with MXNet's warning). Anything else raises an MXNetError naming the file."""
    save_dict = nd.load(fname)
    if not save_dict:
        logging.warning("Params file '%s' is empty", fname)
        return {}, {}
    if not isinstance(save_dict, dict):
        raise MXNetError("Invalid param file %s: it holds an unnamed list of arrays, not parameters with arg:/aux: "
                         "names" % fname)
    arg_params, aux_params = {}, {}
    for key, value in save_dict.items():
        kind, _, name = key.partition(":")
        if kind == "arg":
            arg_params[name] = value
        elif kind == "aux":
            aux_params[name] = value
        else:
            raise ParamNameError("Invalid param file %s: parameter names start with arg: or aux:, got %r"
                                 % (fname, key[:200]))
    return arg_params, aux_params


def load_params(prefix, epoch):
    """(arg_params, aux_params) from `prefix-%04d.params`."""
    return split_params("%s-%04d.params" % (prefix, epoch))


def load_checkpoint(prefix, epoch):
    """(symbol, arg_params, aux_params) of an MXNet checkpoint."""
    symbol = sym.load("%s-symbol.json" % prefix)
    arg_params, aux_params = load_params(prefix, epoch)
    return symbol, arg_params, aux_params


def __getattr__(name):
    """`mx.model.FeedForward`, the legacy estimator, lives in feedforward.py: it trains with Module, which reads
    checkpoints through this module, so it is imported on first use."""
    if name == "FeedForward":
        from .feedforward import FeedForward  # lazy: feedforward.py builds on module.py, which imports this module
        return FeedForward
    raise AttributeError("module %r has no attribute %r" % (__name__, name))
