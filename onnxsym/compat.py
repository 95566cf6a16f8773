"""Run MXNet programs unchanged: `import mxnet` (and `mxnet.io`, `mxnet.module`, ...) gives onnxsym.

    python -m onnxsym.compat train.py --epochs 3        # a script that says `import mxnet as mx`
    python -m onnxsym.compat -m mypackage.train          # a module, as `python -m`

or, inside a program, before its first `import mxnet`:

    import onnxsym.compat
    onnxsym.compat.install()

`mxnet.X.Y` resolves to onnxsym's module of the same MXNet name: the attribute chain `onnxsym.X.Y` where it is a
module (`mxnet.io` is onnxsym.module.io, `mxnet.initializer` onnxsym.module.initializer, `mxnet.ndarray`
onnxsym.ndarray), else the package `onnxsym.X.Y`. The module objects are onnxsym's own, so `mxnet.io.DataBatch is
onnxsym.io.DataBatch`. A name onnxsym lacks fails as a missing module does (ModuleNotFoundError naming it). Nothing
changes unless install() is called: `import onnxsym` never claims the name `mxnet`, and install() refuses when a
real MXNet is already imported.
"""
import importlib
import importlib.abc
import importlib.util
import os
import runpy
import sys
import types

__all__ = ["install", "uninstall", "main"]

_NAME = "mxnet"


def _module_for(rest):
    """The onnxsym module that `mxnet.<rest>` names, or None."""
    import onnxsym  # lazy: start-up time (the facade loads at a program's first mxnet import)
    value = onnxsym
    for part in rest.split("."):
        value = getattr(value, part, None)
        if not isinstance(value, types.ModuleType):
            break
    else:
        return value
    try:
        return importlib.import_module("onnxsym." + rest)
    except ModuleNotFoundError as err:
        if err.name and ("onnxsym." + rest).startswith(err.name):
            return None         # onnxsym has no such module: the import fails as for any missing module
        raise


class _MXNetNames(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds `mxnet` and `mxnet.*` as onnxsym's modules."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname == _NAME:
            import onnxsym  # lazy: start-up time (the facade loads at a program's first mxnet import)
            module = onnxsym
        elif fullname.startswith(_NAME + "."):
            module = _module_for(fullname[len(_NAME) + 1:])
            if module is None:
                return None
        else:
            return None
        spec = importlib.util.spec_from_loader(fullname, self, is_package=hasattr(module, "__path__"))
        spec.loader_state = module
        return spec

    def create_module(self, spec):
        return spec.loader_state        # onnxsym's own module object, not a copy

    def exec_module(self, module):
        pass                            # already imported as onnxsym's module


def _finder():
    return next((f for f in sys.meta_path if isinstance(f, _MXNetNames)), None)


def install():
    """From now on `import mxnet` and `import mxnet.X` give onnxsym's modules. Idempotent."""
    existing = sys.modules.get(_NAME)
    if existing is not None and not existing.__name__.startswith("onnxsym"):
        raise ImportError("a real MXNet is already imported (%s): onnxsym.compat.install() must run before the "
                          "program's first `import mxnet`" % getattr(existing, "__file__", existing))
    if _finder() is None:
        sys.meta_path.insert(0, _MXNetNames())


def uninstall():
    """Undo install(): `mxnet` names that resolved to onnxsym are forgotten."""
    finder = _finder()
    if finder is not None:
        sys.meta_path.remove(finder)
    for name in [n for n in sys.modules if n == _NAME or n.startswith(_NAME + ".")]:
        if getattr(sys.modules[name], "__name__", "").startswith("onnxsym"):
            del sys.modules[name]


def main(argv=None):
    """`python -m onnxsym.compat SCRIPT [ARGS...]` or `python -m onnxsym.compat -m MODULE [ARGS...]`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or (argv[0] == "-m" and len(argv) < 2):
        print(__doc__.strip().splitlines()[0] + "\n\nusage: python -m onnxsym.compat SCRIPT [ARGS...]\n"
              "       python -m onnxsym.compat -m MODULE [ARGS...]")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    install()
    if argv[0] == "-m":
        sys.argv = [argv[1]] + argv[2:]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = argv
        sys.path.insert(0, os.path.dirname(os.path.abspath(argv[0])))     # as `python SCRIPT` does
        runpy.run_path(argv[0], run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
