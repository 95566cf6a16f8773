"""`mx.engine`: MXNet's engine controls. onnxsym has no asynchronous engine (each ONNX Runtime run returns when
its results are ready), so bulking operations is a no-op kept for programs that set it."""
import contextlib

__all__ = ["set_bulk_size", "bulk"]

_bulk_size = 15     # MXNet's default (MXNET_EXEC_BULK_EXEC_MAX_NODE_TRAIN_FWD)


def set_bulk_size(size):
    """Set the number of operations bulked together (ignored: nothing to bulk); returns the previous value."""
    global _bulk_size
    previous, _bulk_size = _bulk_size, int(size)
    return previous


@contextlib.contextmanager
def bulk(size):
    """`with mx.engine.bulk(10):` -- the bulk size set for the block, the previous one restored after."""
    previous = set_bulk_size(size)
    try:
        yield
    finally:
        set_bulk_size(previous)
