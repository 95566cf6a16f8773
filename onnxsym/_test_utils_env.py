"""Environment, process and data-file helpers of `mx.test_utils` (MXNet 1.9 names and behaviour).

Nothing here touches the network unless `download` (or a get_* helper whose files are absent) is called.
"""
import bz2
import contextlib
import functools
import gzip
import logging
import os
import platform
import shutil
import struct
import sys
import urllib.request
import zipfile

import numpy as np

from .module.io import DataIter
from .runtime.library import cuda_device_count
from .util import getenv, setenv, use_np  # noqa: F401  (MXNet's test_utils has them too)

__all__ = ["getenv", "setenv", "environment", "use_np", "discard_stderr", "retry", "is_cd_run", "is_aarch64_run",
           "list_gpus", "download", "download_model", "get_mnist", "get_mnist_pkl", "get_mnist_ubyte",
           "get_cifar10", "get_zip_data", "get_bz2_data", "get_im2rec_path", "DummyIter"]


@contextlib.contextmanager
def environment(*args):
    """Set environment variables for the body of a `with` block (or a decorated function) and restore the
    previous state afterwards, even on error. `environment(name, value)` or `environment({name: value, ...})`;
    a value of None unsets the variable.

    >>> with environment('MXNET_ENGINE_TYPE', 'NaiveEngine'):
    ...     pass
    """
    if len(args) == 1 and isinstance(args[0], dict):
        env_vars = args[0]
    else:
        assert len(args) == 2, "Expecting one dict arg or two args: env var name and value"
        env_vars = {args[0]: args[1]}
    snapshot = {name: os.environ.get(name) for name in env_vars}
    for name, value in env_vars.items():
        setenv(name, value)
    try:
        yield
    finally:
        for name, value in snapshot.items():
            setenv(name, value)


@contextlib.contextmanager
def discard_stderr():
    """Send file descriptor 2, where C code (ONNX Runtime's logger) writes, to /dev/null inside the `with` block;
    Python's sys.stderr is flushed first so nothing written before is lost."""
    fileno = 2
    try:
        os.fstat(fileno)
    except OSError:           # no fd 2 in this process: nothing to discard
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fileno)
    try:
        with open(os.devnull, "w") as bit_bucket:
            os.dup2(bit_bucket.fileno(), fileno)
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, fileno)
        os.close(saved)


def retry(n):
    """Decorator for stochastic tests: rerun on AssertionError, up to `n` tries in all; the last error is raised."""
    assert n > 0

    def decorate(f):
        @functools.wraps(f)
        def wrapper(*args, **kwargs):
            for i in range(n):
                try:
                    f(*args, **kwargs)
                    return
                except AssertionError:
                    if i == n - 1:
                        raise
        return wrapper
    return decorate


def is_cd_run():
    """True inside a Continuous Delivery job (CD_JOB=1)."""
    return os.environ.get("CD_JOB", 0) == "1"


def is_aarch64_run():
    return platform.machine() == "aarch64"


def list_gpus():
    """range(number of CUDA devices ONNX Runtime can use)."""
    return range(cuda_device_count())


def download(url, fname=None, dirname=None, overwrite=False, retries=5):
    """Download `url` to `fname` (default: the URL's last part) in `dirname`; skipped when the file exists
    unless `overwrite`. Tries 1 + `retries` times. Returns the file name."""
    assert retries >= 0, "Number of retries should be at least 0"
    fname = url.split("/")[-1] if fname is None else fname
    if dirname is None:
        dirname = os.path.dirname(fname)
    else:
        fname = os.path.join(dirname, fname)
    if dirname:
        os.makedirs(dirname, exist_ok=True)
    if not overwrite and os.path.exists(fname):
        logging.info("%s exists, skipping download", fname)
        return fname
    while True:
        try:
            with urllib.request.urlopen(url) as response, open(fname, "wb") as out:
                shutil.copyfileobj(response, out)
            break
        except Exception:  # noqa: BLE001  (any failure is retried, as MXNet does)
            retries -= 1
            if retries <= 0:
                raise
            print("download failed, retrying, %d attempt%s left" % (retries, "s" if retries > 1 else ""))
    logging.info("downloaded %s into %s successfully", url, fname)
    return fname


_MODEL_URL = "http://data.mxnet.io/models/"


def download_model(model_name, dst_dir="./", meta_info=None):
    """Download `model_name`-symbol.json and -0000.params; meta_info: {name: {'symbol': url, 'params': url}}
    (default: MXNet's ImageNet models). Returns (path prefix, 0), or (None, 0) for an unknown name."""
    if meta_info is None:
        meta_info = {name: {"symbol": _MODEL_URL + path + "-symbol.json", "params": _MODEL_URL + path + "-0000.params"}
                     for name, path in [("imagenet1k-resnet-18", "imagenet/resnet/18-layers/resnet-18"),
                                        ("imagenet1k-resnet-50", "imagenet/resnet/50-layers/resnet-50"),
                                        ("imagenet1k-resnet-152", "imagenet/resnet/152-layers/resnet-152")]}
    if model_name not in meta_info:
        return None, 0
    os.makedirs(dst_dir, exist_ok=True)
    prefix = os.path.join(dst_dir, model_name)
    download(meta_info[model_name]["symbol"], prefix + "-symbol.json")
    download(meta_info[model_name]["params"], prefix + "-0000.params")
    return prefix, 0


_DATA_URL = "http://data.mxnet.io/"


def get_mnist():
    """MNIST as a dict of numpy arrays (train_data (60000,1,28,28) float32 in [0,1], train_label, test_*),
    downloaded to the current folder when absent."""
    def read(label_url, image_url):
        with gzip.open(download(label_url)) as labels:
            struct.unpack(">II", labels.read(8))
            label = np.frombuffer(labels.read(), dtype=np.int8)
        with gzip.open(download(image_url), "rb") as images:
            _, _, rows, cols = struct.unpack(">IIII", images.read(16))
            image = np.frombuffer(images.read(), dtype=np.uint8).reshape(len(label), 1, rows, cols)
        return label, image.astype(np.float32) / 255
    path = _DATA_URL + "data/mnist/"
    train_label, train_data = read(path + "train-labels-idx1-ubyte.gz", path + "train-images-idx3-ubyte.gz")
    test_label, test_data = read(path + "t10k-labels-idx1-ubyte.gz", path + "t10k-images-idx3-ubyte.gz")
    return {"train_data": train_data, "train_label": train_label, "test_data": test_data, "test_label": test_label}


def get_mnist_pkl():
    """data/mnist.pkl.gz, downloaded when absent."""
    if not os.path.exists("data/mnist.pkl.gz"):
        download("http://deeplearning.net/data/mnist/mnist.pkl.gz", dirname="data")


def _fetch_zip(url, wanted):
    os.makedirs("data", exist_ok=True)
    if not all(os.path.exists(os.path.join("data", f)) for f in wanted):
        with zipfile.ZipFile(download(url, dirname="data")) as archive:
            archive.extractall("data")


def get_mnist_ubyte():
    """The four MNIST IDX files in ./data, downloaded and unzipped when one is absent."""
    _fetch_zip(_DATA_URL + "mxnet/data/mnist.zip", ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                                    "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"])


def get_cifar10():
    """CIFAR-10 .rec/.lst files in ./data/cifar, downloaded and unzipped when one is absent."""
    _fetch_zip(_DATA_URL + "mxnet/data/cifar10.zip", ["cifar/train.rec", "cifar/test.rec", "cifar/train.lst",
                                                      "cifar/test.lst"])


def get_zip_data(data_dir, url, data_origin_name):
    """Download `url` as data_dir/data_origin_name and extract it there, unless that file exists."""
    data_origin_name = os.path.join(data_dir, data_origin_name)
    if not os.path.exists(data_origin_name):
        download(url, dirname=data_dir, overwrite=False)
        with zipfile.ZipFile(data_origin_name) as archive:
            archive.extractall(path=data_dir)


def get_bz2_data(data_dir, data_name, url, data_origin_name):
    """Download the bz2 file `url`, decompress it to data_dir/data_name and delete the archive, unless
    data_dir/data_name exists."""
    data_name = os.path.join(data_dir, data_name)
    data_origin_name = os.path.join(data_dir, data_origin_name)
    if not os.path.exists(data_name):
        download(url, fname=data_origin_name, dirname=data_dir, overwrite=False)
        with bz2.BZ2File(data_origin_name, "rb") as source, open(data_name, "wb") as out:
            shutil.copyfileobj(source, out)
        os.remove(data_origin_name)


def get_im2rec_path(home_env="MXNET_HOME"):
    """Path of MXNet's tools/im2rec.py under $MXNET_HOME (onnxsym ships no copy); IOError when absent."""
    root = os.environ.get(home_env, os.path.dirname(os.path.abspath(__file__)))
    for candidate in (os.path.join(root, "tools", "im2rec.py"), os.path.join(root, "..", "..", "tools", "im2rec.py")):
        if os.path.isfile(candidate):
            return candidate
    raise IOError("Could not find path to tools/im2rec.py")


class DummyIter(DataIter):
    """An endless iterator returning the first batch of `real_iter` again and again (for speed tests)."""

    def __init__(self, real_iter):
        super().__init__(real_iter.batch_size)
        self.real_iter = real_iter
        self.provide_data = real_iter.provide_data
        self.provide_label = real_iter.provide_label
        self.the_batch = next(real_iter)

    def __iter__(self):
        return self

    def next(self):
        return self.the_batch
