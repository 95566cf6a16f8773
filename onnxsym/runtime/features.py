"""`mx.runtime.Features`: what this onnxsym installation can do, under MXNet's compile-time feature names.

MXNet reports how libmxnet was built; onnxsym reports what its ONNX Runtime build and installed packages provide
(CUDA: onnxruntime's CUDA provider and a device; OPENCV: no image decoding here; DIST_KVSTORE: no multi-process
kvstore), so that programs that branch on a feature take the branch onnxsym supports."""
import collections

__all__ = ["Feature", "Features", "feature_list"]


class Feature:
    """A feature: `name` and `enabled`."""
    __slots__ = ("name", "enabled")

    def __init__(self, name, enabled):
        self.name, self.enabled = name, bool(enabled)

    def __repr__(self):
        return "%s %s" % ("✔" if self.enabled else "✖", self.name)


def _cuda():
    from ..context import num_gpus  # lazy: context imports this package (a cycle at module level)
    return num_gpus() > 0


# MXNet 1.9's names, in its order; a value is a bool or a function deciding it when the features are first read
_FEATURES = (
    ("CUDA", _cuda), ("CUDNN", _cuda), ("NCCL", False), ("CUDA_RTC", False), ("TENSORRT", False),
    ("CPU_SSE", True), ("CPU_SSE2", True), ("CPU_SSE3", True), ("CPU_SSE4_1", True), ("CPU_SSE4_2", True),
    ("CPU_SSE4A", False), ("CPU_AVX", True), ("CPU_AVX2", True), ("OPENMP", True), ("SSE", True),
    ("F16C", True), ("JEMALLOC", False), ("BLAS_OPEN", False), ("BLAS_ATLAS", False), ("BLAS_MKL", False),
    ("BLAS_APPLE", False), ("LAPACK", True), ("MKLDNN", False), ("OPENCV", False), ("CAFFE", False),
    ("PROFILER", False), ("DIST_KVSTORE", False), ("CXX14", True), ("INT64_TENSOR_SIZE", True),
    ("SIGNAL_HANDLER", False), ("DEBUG", False), ("TVM_OP", False),
)


def feature_list():
    """The features, as a list of Feature."""
    return [Feature(name, value() if callable(value) else value) for name, value in _FEATURES]


class Features(collections.OrderedDict):
    """{name: Feature}, built once (as MXNet's)."""
    instance = None

    def __new__(cls):
        if cls.instance is None:
            cls.instance = super().__new__(cls)
            super(Features, cls.instance).__init__((f.name, f) for f in feature_list())
        return cls.instance

    def __init__(self):     # filled once in __new__
        pass

    def __repr__(self):
        return str(list(self.values()))

    def is_enabled(self, feature_name):
        """Whether `feature_name` (e.g. 'CUDA') is enabled; an unknown name is a RuntimeError, as in MXNet."""
        name = feature_name.upper()
        if name not in self:
            raise RuntimeError("Feature '{}' is unknown, known features are: {}".format(name, list(self.keys())))
        return self[name].enabled
