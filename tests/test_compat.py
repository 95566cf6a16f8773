"""Running MXNet programs unchanged (onnxsym/compat.py): `import mxnet` and MXNet's module paths give onnxsym's
own modules, through `python -m onnxsym.compat` or install()."""
import subprocess
import sys
import textwrap

import pytest

import onnxsym

SCRIPT = """
import sys
import mxnet as mx
from mxnet.io import DataBatch, NDArrayIter
import mxnet.ndarray as nd
import mxnet.symbol as sym
from mxnet import initializer, metric, optimizer, model, module
from mxnet.module import Module
import onnxsym
assert mx is onnxsym and nd is onnxsym.nd and sym is onnxsym.sym
assert DataBatch is onnxsym.io.DataBatch and Module is onnxsym.mod.Module
assert initializer is onnxsym.init and metric is onnxsym.metric and optimizer is onnxsym.optimizer
data = mx.sym.Variable("data")
net = mx.sym.FullyConnected(data, num_hidden=2, name="fc")
ex = net.simple_bind(mx.cpu(), data=(1, 3))
print("ok", ex.forward()[0].shape, sys.argv[1:])
"""


def _run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "onnxsym.compat", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def test_a_script_that_imports_mxnet_runs_unchanged(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    done = _run(str(script), "--epochs", "3")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok (1, 2) ['--epochs', '3']"


def test_a_module_runs_with_dash_m_and_its_folder_on_the_path(tmp_path):
    (tmp_path / "helper.py").write_text("VALUE = 7\n")
    (tmp_path / "job.py").write_text(SCRIPT.replace('print("ok"', 'import helper\nprint("ok", helper.VALUE'))
    done = _run(str(tmp_path / "job.py"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok 7 (1, 2)")
    done = _run("-m", "job", "x", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok 7 (1, 2) ['x']"


def test_missing_mxnet_modules_fail_as_missing_modules(tmp_path):
    script = tmp_path / "missing.py"
    script.write_text("import mxnet.nosuchmodule\n")
    done = _run(str(script))
    assert done.returncode == 1
    assert "ModuleNotFoundError: No module named 'mxnet.nosuchmodule'" in done.stderr


def test_gluon_imports_and_names_what_is_missing_when_used(tmp_path):
    # MXNet scripts import gluon beside the symbolic API; the import works, the first use says what to do
    script = tmp_path / "gluon_user.py"
    script.write_text("import mxnet as mx\nfrom mxnet import gluon\nfrom mxnet.gluon import nn\n"
                      "print(hasattr(gluon, 'Trainer'), mx.nd.ones((2,)).sum().asscalar())\nnn.Dense(3)\n")
    done = _run(str(script))
    assert done.stdout.strip() == "False 2.0"
    assert done.returncode == 1
    assert "GluonNotProvidedError: mx.gluon.nn.Dense: onnxsym provides MXNet's symbolic API" in done.stderr
    assert "net.export('model')" in done.stderr


def test_usage_without_a_script():
    done = _run()
    assert done.returncode == 2 and "usage: python -m onnxsym.compat SCRIPT" in done.stdout


def test_install_in_process_and_uninstall():
    from onnxsym import compat
    assert "mxnet" not in sys.modules
    compat.install()
    try:
        import mxnet
        import mxnet.io
        assert mxnet is onnxsym and mxnet.io is onnxsym.io
    finally:
        compat.uninstall()
    assert "mxnet" not in sys.modules
    with pytest.raises(ModuleNotFoundError):
        import mxnet  # noqa: F401


def test_install_refuses_when_a_real_mxnet_is_loaded(monkeypatch):
    from onnxsym import compat
    fake = type(sys)("mxnet")
    fake.__file__ = "/site-packages/mxnet/__init__.py"
    monkeypatch.setitem(sys.modules, "mxnet", fake)
    with pytest.raises(ImportError, match="a real MXNet is already imported"):
        compat.install()


def test_importing_onnxsym_does_not_claim_mxnet():
    code = textwrap.dedent("""
        import onnxsym
        try:
            import mxnet
        except ModuleNotFoundError:
            print("absent")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "absent", done.stderr
