"""The optimizer-state files of `Updater.get_states` / `set_states` (and `save_optimizer_states`).

The bytes: MAGIC, a little-endian u64 header length, a UTF-8 JSON header, then the raw C-order array bytes back
to back. The header is {"format": 1, "arrays": [{"dtype", "shape"}...], "states": V, "optimizer": V or null}; V
is JSON with tagged containers {"tuple": [...]}, {"list": [...]}, {"dict": [[k, v], ...]}, {"ndarray": i} (the
i-th array) and, for the optimizer, {"optimizer": name, "attrs": V} (a registered class) and
{"scheduler": class name, "attrs": V} (a class of onnxsym's lr_scheduler module).

A file only describes values: nothing it names is called, and every optimizer and scheduler attribute it sets
must be one the class's constructor sets, with that attribute's type (`_DECLARED`, else the type of the
constructor's default). States must be None, arrays or tuples/lists of those; given the parameters
(`Module.load_optimizer_states`), each state must have the structure, shapes and dtypes the optimizer creates
for that parameter. Everything else is an MXNetError naming the file and the field.
"""
import json
import math
import struct
import warnings

import numpy as np

from ..base import MXNetError
from ..runtime.ndarray import NDArray
from . import lr_scheduler as _lr_scheduler
from .optimizer import Optimizer

_MAGIC = b"ONNXSYM-UPDATER\n"
_DTYPES = {np.dtype(t).str: np.dtype(t) for t in ("float16", "float32", "float64", "int8", "int32", "int64",
                                                   "uint8", "bool")}
_MAX_NDIM = 32
_MAX_CATCH_UP = 10 ** 6     # FactorScheduler steps a loaded scheduler may have to catch up (its loop is O(steps))


# ----- writing -----
class _Encoder:
    def __init__(self):
        self.arrays = []

    def __call__(self, value):
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, (int, np.integer)):
            return int(value)
        if isinstance(value, (float, np.floating)):
            return float(value)
        if isinstance(value, NDArray):
            self.arrays.append(np.asarray(value._data, order="C"))
            return {"ndarray": len(self.arrays) - 1}
        if isinstance(value, (tuple, list)):
            return {type(value).__name__: [self(v) for v in value]}
        if isinstance(value, dict):
            return {"dict": [[self(k), self(v)] for k, v in value.items()]}
        if isinstance(value, Optimizer):
            return {"optimizer": type(value).__name__.lower(), "attrs": self(_optimizer_attrs(value))}
        if _is_scheduler(value):
            return {"scheduler": type(value).__name__, "attrs": self(dict(vars(value)))}
        raise ValueError("Updater.get_states cannot store a %s" % type(value).__name__)


def _optimizer_attrs(optimizer):
    attrs = {k: v for k, v in vars(optimizer).items() if k not in _NOT_STORED}
    attrs["_current_device"] = next(k for k, v in optimizer._all_index_update_counts.items()
                                    if v is optimizer._index_update_count)
    return attrs


def dump(states, optimizer):
    """The bytes of `states` (index -> state) and, when given, `optimizer`."""
    encode = _Encoder()
    header = {"format": 1, "states": encode(states), "optimizer": encode(optimizer) if optimizer else None}
    header["arrays"] = [{"dtype": a.dtype.str, "shape": list(a.shape)} for a in encode.arrays]
    text = json.dumps(header, allow_nan=True).encode("utf-8")
    return b"".join([_MAGIC, struct.pack("<Q", len(text)), text] + [a.tobytes() for a in encode.arrays])


# ----- field types -----
class _Kind:
    """A predicate on decoded values with the words that name it in errors."""

    def __init__(self, words, test):
        self.words, self.test = words, test

    def __call__(self, value):
        return self.test(value)


def _int64(v):
    return isinstance(v, int) and not isinstance(v, bool) and -2 ** 63 <= v < 2 ** 63


NUMBER = _Kind("a number", lambda v: isinstance(v, float) or _int64(v))
COUNT = _Kind("a non-negative integer", lambda v: _int64(v) and v >= 0)
FLAG = _Kind("a bool", lambda v: isinstance(v, bool) or NUMBER(v))
TEXT = _Kind("a string", lambda v: isinstance(v, str))
INDEX = _Kind("a parameter index (int or str)", lambda v: COUNT(v) or isinstance(v, str))
ARRAY = _Kind("an array", lambda v: isinstance(v, NDArray))


def _optional(kind):
    return _Kind("None or " + kind.words, lambda v: v is None or kind(v))


def _dict_of(key, value):
    return _Kind("a dict of %s to %s" % (key.words, value.words),
                 lambda v: isinstance(v, dict) and all(key(k) and value(x) for k, x in v.items()))


def _list_of(item, what=list):
    return _Kind("a %s of %s" % (what.__name__, item.words), lambda v: isinstance(v, what) and all(map(item, v)))


def _record(**fields):
    return _Kind("a dict with keys %s" % ", ".join(sorted(fields)),
                 lambda v: isinstance(v, dict) and set(v) == set(fields) and all(fields[k](v[k]) for k in v))


def _is_scheduler(value):
    return type(value).__module__ == _lr_scheduler.__name__ and isinstance(value, _lr_scheduler.LRScheduler)


_STEP = _Kind("an integer >= 1", lambda v: COUNT(v) and v >= 1)
_SYM_INFO = _Kind("() or (attributes, argument names)", lambda v: v == () or (
    isinstance(v, tuple) and len(v) == 2 and _dict_of(TEXT, _dict_of(TEXT, TEXT))(v[0]) and _list_of(TEXT)(v[1])))
_NOT_STORED = ("param_dict", "_index_update_count")      # rebuilt on load
# Attributes whose constructor default (None, {}) does not tell their type; the others keep their default's type.
_DECLARED = {
    "lr": _optional(NUMBER), "clip_gradient": _optional(NUMBER), "last_lr": _optional(NUMBER),
    "cur_lr": _optional(NUMBER), "lower_bound": _optional(NUMBER), "upper_bound": _optional(NUMBER),
    "clip_weights": _optional(NUMBER),
    "lr_scheduler": _Kind("None or an lr_scheduler", lambda v: v is None or _is_scheduler(v)),
    "begin_num_update": COUNT, "num_update": COUNT, "aggregate_num": COUNT, "_current_device": COUNT,
    "_all_index_update_counts": _dict_of(COUNT, _dict_of(INDEX, COUNT)),
    "lr_mult": _dict_of(INDEX, NUMBER), "wd_mult": _dict_of(INDEX, NUMBER), "idx2name": _dict_of(INDEX, TEXT),
    "sym_info": _SYM_INFO,
    "cumgrads": _dict_of(INDEX, _record(cum_grad=_Kind("an array or 0", lambda v: ARRAY(v) or NUMBER(v)),
                                        num_cums=COUNT)),
    "weight_previous": _dict_of(INDEX, ARRAY),
    # lr_scheduler fields used as counts and list indices
    "warmup_steps": COUNT, "max_update": _STEP, "max_steps": NUMBER, "cur_step_ind": COUNT, "count": NUMBER,
    "step": _Kind("an integer >= 1 or a list of them", lambda v: _STEP(v) or (_list_of(_STEP)(v) and v)),
}
# Constructor arguments of the schedulers that have required ones (to learn their fields).
_SCHEDULER_SAMPLES = {"FactorScheduler": dict(step=1), "MultiFactorScheduler": dict(step=[1]),
                      "PolyScheduler": dict(max_update=1), "CosineScheduler": dict(max_update=1)}


def _kind_of(name, default):
    """The type a loaded attribute must have: declared, else that of the constructor's default."""
    if name in _DECLARED:
        return _DECLARED[name]
    if isinstance(default, bool):
        return FLAG
    if isinstance(default, (int, float)):
        return NUMBER
    if isinstance(default, str):
        return TEXT
    return None


def _fields(cls, **arguments):
    """(name -> kind of every attribute the constructor of `cls` sets, None where the type is unknown; the
    instance), or None when `cls` cannot be built from `arguments`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            instance = cls(**arguments)
    except Exception:       # a constructor with required arguments (a user's optimizer), or an abstract class
        return None
    kinds = {name: _kind_of(name, value) for name, value in vars(instance).items() if name not in _NOT_STORED}
    return kinds, instance


# ----- reading -----
class _Reader:
    """Decodes one blob; every refusal is an MXNetError that starts with `source` (the file or the caller)."""

    def __init__(self, source):
        self.source = source

    def fail(self, message):
        raise MXNetError("%s: %s" % (self.source, message))

    def read(self, blob):
        header, offset = self._header(blob)
        self.arrays = []
        for spec in header["arrays"]:
            dtype = _DTYPES.get(spec.get("dtype")) if isinstance(spec, dict) and TEXT(spec.get("dtype")) else None
            shape = spec.get("shape") if isinstance(spec, dict) else None
            if dtype is None or not isinstance(shape, list) or len(shape) > _MAX_NDIM or not all(map(COUNT, shape)):
                self.fail("bad array entry %.80r" % (spec,))
            count = math.prod(shape)
            if offset + dtype.itemsize * count > len(blob):
                self.fail("array data truncated")
            self.arrays.append(np.frombuffer(blob, dtype, count, offset).reshape(shape).copy())
            offset += dtype.itemsize * count
        if offset != len(blob):
            self.fail("%d unexpected trailing bytes" % (len(blob) - offset))
        states = self.value(header.get("states"))
        if not _dict_of(INDEX, _Kind("", _is_state))(states):
            self.fail("states must be a dict of parameter index to None, an array or tuples/lists of those")
        optimizer = header.get("optimizer")
        if optimizer is not None and not (isinstance(optimizer, dict) and set(optimizer) == {"optimizer", "attrs"}):
            self.fail("the optimizer entry is not an optimizer")
        return states, self.value(optimizer) if optimizer is not None else None

    def _header(self, blob):
        if not blob.startswith(_MAGIC) or len(blob) < len(_MAGIC) + 8:
            self.fail("not an onnxsym optimizer-state file (MXNet's pickled states are not loaded; save them "
                      "again with onnxsym's save_optimizer_states)")
        (size,), start = struct.unpack_from("<Q", blob, len(_MAGIC)), len(_MAGIC) + 8
        if size > len(blob) - start:
            self.fail("truncated header (%d bytes announced, %d left)" % (size, len(blob) - start))
        try:
            header = json.loads(blob[start:start + size].decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as err:
            self.fail("corrupt header: %s" % (str(err)[:200],))
        if not isinstance(header, dict) or header.get("format") != 1 or not isinstance(header.get("arrays"), list):
            self.fail("unsupported header (format %.40r)" % (header.get("format") if isinstance(header, dict)
                                                              else None,))
        return header, start + size

    def value(self, value):
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, dict) and len(value) == 1:
            (tag, body), = value.items()
            if tag == "ndarray" and COUNT(body) and body < len(self.arrays):
                return NDArray(self.arrays[body])
            if tag in ("tuple", "list") and isinstance(body, list):
                items = [self.value(v) for v in body]
                return tuple(items) if tag == "tuple" else items
            if tag == "dict" and isinstance(body, list) and all(isinstance(p, list) and len(p) == 2 for p in body):
                return {self._key(k): self.value(v) for k, v in body}
        if isinstance(value, dict) and set(value) == {"optimizer", "attrs"}:
            return self._optimizer(value["optimizer"], self.value(value["attrs"]))
        if isinstance(value, dict) and set(value) == {"scheduler", "attrs"}:
            return self._scheduler(value["scheduler"], self.value(value["attrs"]))
        self.fail("malformed entry %.80r" % (value,))

    def _key(self, key):
        key = self.value(key)
        if isinstance(key, list):
            key = tuple(key)
        try:
            hash(key)
        except TypeError:
            self.fail("unhashable dict key %.80r" % (key,))
        return key

    def _optimizer(self, name, attrs):
        cls = Optimizer.opt_registry.get(name) if isinstance(name, str) else None
        if cls is None or not isinstance(attrs, dict):
            self.fail("unknown optimizer %.80r" % (name,))
        learned = _fields(cls)
        if learned is None:
            self.fail("optimizer %s cannot be loaded: its constructor needs arguments" % cls.__name__)
        fields, sample = learned
        fields["_current_device"] = _DECLARED["_current_device"]
        self._check_attrs(cls.__name__, fields, attrs)
        # what the constructor guarantees and the updates rely on
        if attrs["lr"] is None and attrs["lr_scheduler"] is None:
            self.fail("field 'lr' of %s is None without an lr_scheduler" % cls.__name__)
        if attrs["aggregate_num"] and not sample.aggregate_num:
            self.fail("field 'aggregate_num' of %s must be 0: it updates one parameter at a time" % cls.__name__)
        optimizer = object.__new__(cls)
        device = attrs.pop("_current_device")
        optimizer.__dict__.update(attrs)
        optimizer.param_dict = {}
        optimizer._index_update_count = optimizer._all_index_update_counts.setdefault(device, {})
        self._check_catch_up(optimizer)
        return optimizer

    def _scheduler(self, name, attrs):
        cls = getattr(_lr_scheduler, name, None) if isinstance(name, str) else None
        if not (isinstance(cls, type) and issubclass(cls, _lr_scheduler.LRScheduler) and isinstance(attrs, dict)):
            self.fail("unknown lr_scheduler %.80r" % (name,))
        learned = _fields(cls, **_SCHEDULER_SAMPLES.get(name, {}))
        if learned is None:
            self.fail("lr_scheduler %s cannot be loaded" % name)
        self._check_attrs(name, learned[0], attrs)
        scheduler = object.__new__(cls)
        scheduler.__dict__.update(attrs)
        return scheduler

    def _check_attrs(self, owner, fields, attrs):
        for name, value in attrs.items():
            if name not in fields:
                self.fail("%.80r is not a field of %s" % (name, owner))
            if fields[name] is None:
                self.fail("field %r of %s has a type optimizer-state files cannot hold" % (name, owner))
            if not fields[name](value):
                self.fail("field %r of %s must be %s, got %.80r" % (name, owner, fields[name].words, value))
        missing = sorted(set(fields) - set(attrs))
        if missing:
            self.fail("%s fields missing: %s" % (owner, ", ".join(missing)))

    def _check_catch_up(self, optimizer):
        """FactorScheduler walks from its count to num_update one step at a time: refuse a file whose next
        update would walk for ever."""
        scheduler = optimizer.lr_scheduler
        if isinstance(scheduler, _lr_scheduler.FactorScheduler) and isinstance(scheduler.step, int):
            if (optimizer.num_update - scheduler.count) / scheduler.step > _MAX_CATCH_UP:
                self.fail("lr_scheduler count %r is %r updates behind num_update %r"
                          % (scheduler.count, optimizer.num_update - scheduler.count, optimizer.num_update))


def _is_state(value):
    """None, an array, or a tuple/list of states (multi-precision Adam keeps (master, (mean, var)))."""
    if value is None or isinstance(value, NDArray):
        return True
    return isinstance(value, (tuple, list)) and all(map(_is_state, value))


def load(blob, source="Updater.set_states"):
    """(states, optimizer or None) from `dump`'s bytes; any problem is an MXNetError starting with `source`."""
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise TypeError("Updater.set_states expects bytes from Updater.get_states, got %s" % type(blob).__name__)
    try:
        return _Reader(source).read(bytes(blob))
    except RecursionError:
        raise MXNetError("%s: nested too deeply" % source) from None


def check_against(states, optimizer, weights, source):
    """Refuse states that do not have the structure, shapes and dtypes `optimizer` creates for `weights`
    (index -> NDArray); states of indices without a weight are refused too."""
    for index, state in states.items():
        if index not in weights:
            raise MXNetError("%s: state for parameter index %r, which is not a parameter here (%d parameters)"
                             % (source, index, len(weights)))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                expected = optimizer.create_state_multi_precision(index, weights[index])
        except (ValueError, TypeError, MXNetError) as err:      # e.g. GroupAdaGrad on a 1-D weight
            raise MXNetError("%s: no state fits parameter %r: %s" % (source, index, err)) from None
        problem = _difference(expected, state)
        if problem:
            raise MXNetError("%s: state of parameter %r (%s): %s"
                             % (source, index, optimizer.idx2name.get(index, index), problem))


def _difference(expected, got):
    if isinstance(expected, NDArray) and isinstance(got, NDArray):
        if (tuple(got.shape), got.dtype) != (tuple(expected.shape), expected.dtype):
            return "an array of shape %s %s, expected %s %s" % (tuple(got.shape), np.dtype(got.dtype).name,
                                                               tuple(expected.shape), np.dtype(expected.dtype).name)
        return None
    if isinstance(expected, (tuple, list)) and isinstance(got, type(expected)) and len(got) == len(expected):
        return next(filter(None, map(_difference, expected, got)), None)
    if expected is None and got is None:
        return None
    return "%s, expected %s" % (_describe(got), _describe(expected))


def _describe(state):
    if isinstance(state, (tuple, list)):
        return "a %s of %d" % (type(state).__name__, len(state))
    return "None" if state is None else "an array"
