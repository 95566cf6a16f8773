"""`mx.gluon`: importable, not provided. onnxsym is MXNet's symbolic API; Gluon (blocks, Trainer, gluon.loss, ...) is
not part of it. Programs that import gluon but run on symbols, Modules and mx.nd (many MXNet scripts and tests do
`from mxnet import gluon` at the top) run unchanged; the first use of a Gluon name raises an AttributeError naming
it and saying what to do instead (export the block under MXNet and load the symbol here)."""
import types

__all__ = []

_SUBMODULES = ("nn", "rnn", "loss", "data", "model_zoo", "contrib", "utils", "parameter", "block", "trainer",
               "probability")


class GluonNotProvidedError(AttributeError):
    """A Gluon name was used. An AttributeError, so hasattr() and getattr(module, name, default) work."""

    def __init__(self, where):
        super().__init__(where)
        self.where = where

    def __str__(self):
        return ("%s: onnxsym provides MXNet's symbolic API (mx.sym, mx.mod.Module, mx.nd, mx.autograd), not Gluon. "
                "Export a HybridBlock under MXNet (net.hybridize(); net(x); net.export('model')) and load it here "
                "with mx.model.load_checkpoint('model', 0) or mx.sym.load('model-symbol.json'); train it with "
                "mx.mod.Module" % self.where)


class _Placeholder(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise GluonNotProvidedError("%s.%s" % (self.__name__.replace("onnxsym.", "mx.", 1), name))


def _placeholder(name):
    module = _Placeholder("onnxsym.gluon." + name)
    module.__doc__ = "mx.gluon.%s: not provided by onnxsym (see mx.gluon)." % name
    return module


for _name in _SUBMODULES:
    globals()[_name] = _placeholder(_name)
del _name


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    raise GluonNotProvidedError("mx.gluon." + name)
