"""`mx.monitor` / `mx.mon`: statistics of every operator's output, the arguments and the auxiliary states of the
executors it is installed on, every `interval` batches (MXNet 1.9.1's Monitor).

    mon = mx.mon.Monitor(10, pattern='.*output|.*weight')
    mod.fit(train_iter, monitor=mon, ...)          # or: mod.install_monitor(mon); mon.tic(); ...; mon.toc_print()

Operator outputs come from the executors' monitor callbacks (Executor.set_monitor_callback) during tic() ... toc();
toc() adds the arguments and auxiliary states and returns (step, name, text) rows.
"""
import logging
import re
from math import sqrt

from . import ndarray as _nd
from .runtime.ndarray import NDArray

__all__ = ["Monitor"]


def _mean_norm(x):
    """norm(x) / sqrt(size): MXNet's default statistic (mx.nd.norm: made when onnxsym finishes loading)."""
    return _nd.norm(x) / sqrt(x.size)


class Monitor:
    """Statistics of tensors every `interval` batches.

    interval : int
        Batches between two collections.
    stat_func : callable NDArray -> NDArray (or list of NDArray), default norm(x) / sqrt(x.size)
    pattern : str
        Regular expression; only names it matches (re.match) are collected.
    sort : bool
        Sort the rows by name in toc().
    monitor_all : bool
        Also collect every operator's inputs (as MXNet: under the source's name and `<node>_<input>`).
    """

    def __init__(self, interval, stat_func=None, pattern=".*", sort=False, monitor_all=False):
        self.stat_func = stat_func if stat_func is not None else _mean_norm
        self.interval = interval
        self.activated = False
        self.queue = []
        self.step = 0
        self.exes = []
        self.re_prog = re.compile(pattern)
        self.sort = sort
        self.monitor_all = monitor_all

        def stat_helper(name, array):
            """The executors' callback: queue the statistic of a matching tensor while collecting."""
            name = name.decode() if isinstance(name, bytes) else str(name)
            if not self.activated or not self.re_prog.match(name):
                return
            self.queue.append((self.step, name, self.stat_func(array)))
        stat_helper.wanted = lambda: self.activated       # (executors compute nothing for it in between)
        self.stat_helper = stat_helper

    def install(self, exe):
        """Install on an executor (several may share one monitor)."""
        exe.set_monitor_callback(self.stat_helper, self.monitor_all)
        self.exes.append(exe)

    def tic(self):
        """Start collecting for this batch if it is one of every `interval` (call before forward)."""
        if self.step % self.interval == 0:
            self.queue = []
            self.activated = True
        self.step += 1

    def toc(self):
        """Stop collecting; [(step, name, statistic as text)] of this batch's outputs and of the executors'
        arguments and auxiliary states that match the pattern ([] when this batch was not collected)."""
        if not self.activated:
            return []
        for exe in self.exes:
            for name, array in zip(exe._symbol.list_arguments(), exe.arg_arrays):
                if self.re_prog.match(name):
                    self.queue.append((self.step, name, self.stat_func(array)))
            for name, array in zip(exe._symbol.list_auxiliary_states(), exe.aux_arrays):
                if self.re_prog.match(name):
                    self.queue.append((self.step, name, self.stat_func(array)))
        self.activated = False
        if self.sort:
            self.queue.sort(key=lambda row: row[1])
        rows = []
        for step, name, values in self.queue:
            values = values if isinstance(values, list) else [values]
            text = ""
            for value in values:
                if not isinstance(value, NDArray):
                    raise TypeError("Monitor: stat_func must return NDArrays, got %s for '%s'"
                                    % (type(value).__name__, name))
                text += (str(value.asscalar()) if value.shape == (1,) else str(value.asnumpy())) + "\t"
            rows.append((step, name, text))
        self.queue = []
        return rows

    def toc_print(self):
        """toc(), each row logged as MXNet does."""
        for step, name, text in self.toc():
            logging.info("Batch: {:7d} {:30s} {:s}".format(step, name, text))
