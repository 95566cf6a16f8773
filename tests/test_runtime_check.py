"""At import, onnxsym checks the onnxruntime it finds: new enough, and the training build when the
onnxruntime-training gradient backend is selected (ONNXSYM_AUTOGRAD=ort-training)."""
import os
import subprocess
import sys

import pytest

from onnxsym.runtime.library import C, check_runtime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("version, training, autograd, words", [
    ("1.16.3", False, None, ["needs onnxruntime >= 1.17", "1.16.3", "pip install -U onnxruntime"]),
    ("1.9.0", True, "ort-training", ["needs onnxruntime >= 1.17", "1.9.0"]),
    ("1.32.0", False, "ort-training", ["plain build", "onnxruntime-training-cpu==1.19.2", "unset ONNXSYM_AUTOGRAD"]),
])
def test_unusable_runtimes_are_named(version, training, autograd, words):
    message = check_runtime(version, training, autograd)
    assert message is not None and all(word in message for word in words), message


@pytest.mark.parametrize("version, training, autograd", [
    ("1.17.0", False, None), ("1.32.0", False, "onnxsym"), ("1.19.2", True, "ort-training"),
    ("1.23.2", False, None), ("1.19.2", True, None), ("2.0.0", False, ""),
])
def test_usable_runtimes_pass(version, training, autograd):
    assert check_runtime(version, training, autograd) is None


def test_import_refuses_the_training_backend_without_the_training_build():
    env = dict(os.environ, ONNXSYM_AUTOGRAD="ort-training", PYTHONPATH=ROOT)
    done = subprocess.run([sys.executable, "-c", "import onnxsym"], env=env, capture_output=True, text=True,
                          timeout=120)
    if hasattr(C, "GradientGraphBuilder"):       # the training build is installed: the backend can run
        assert done.returncode == 0, done.stderr
    else:
        assert done.returncode != 0
        assert "ImportError: ONNXSYM_AUTOGRAD=ort-training" in done.stderr.strip().splitlines()[-1]


def test_an_unknown_backend_is_a_clear_error(monkeypatch):
    import onnxsym as mx
    monkeypatch.setenv("ONNXSYM_AUTOGRAD", "torch")
    x = mx.sym.Variable("x")
    exe = mx.sym.MakeLoss(x * x).simple_bind(mx.cpu(), x=(2,))
    with pytest.raises(mx.MXNetError, match="ONNXSYM_AUTOGRAD='torch': use one of onnxsym, ort-training"):
        exe.forward(is_train=True)


def test_custom_ops_without_onnxruntime_extensions_say_what_to_install(monkeypatch):
    """Python 3.14 has no onnxruntime-extensions wheel yet: custom ops then raise one MXNetError saying so."""
    import onnxsym as mx
    from onnxsym.runtime import pyops
    monkeypatch.setitem(sys.modules, "onnxruntime_extensions", None)     # what a missing package looks like
    with pytest.raises(mx.MXNetError, match="pip install onnxruntime-extensions"):
        pyops._extensions()
