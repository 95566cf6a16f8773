"""How onnxsym installs: one top-level package (converters/ and models/ live inside it as onnxsym.converters and
onnxsym.models), so a user's own `converters.py` or `models/` never hides or breaks them."""
import importlib.metadata
import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _pyproject():
    tomllib = pytest.importorskip("tomllib")       # Python 3.11+
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as handle:
        return tomllib.load(handle)


def test_installed_distribution_has_one_top_level_package():
    top_level = importlib.metadata.distribution("onnxsym").read_text("top_level.txt")
    assert top_level.split() == ["onnxsym"]


def test_every_source_package_is_in_the_wheel():
    setuptools = _pyproject()["tool"]["setuptools"]
    package_dir = setuptools["package-dir"]
    assert package_dir["onnxsym.converters"] == "converters" and package_dir["onnxsym.models"] == "models"
    found = {"onnxsym.converters", "onnxsym.models"}
    for folder, _, files in os.walk(os.path.join(ROOT, "onnxsym")):
        if "__pycache__" not in folder and any(name.endswith(".py") for name in files):
            assert "__init__.py" in files, "%s is a package without __init__.py" % folder
            found.add(os.path.relpath(folder, ROOT).replace(os.sep, "."))
    assert sorted(setuptools["packages"]) == sorted(found)


USER_CODE = textwrap.dedent("""
    import os
    import numpy as np
    import onnxsym as mx
    from onnxsym.models import mlp

    assert 'user_converters' not in vars(mx)
    net = mlp.get_symbol(10)
    mod = mx.mod.Module(net)
    mod.bind(data_shapes=[('data', (2, 784))], for_training=False)
    mod.init_params()
    args, aux = mod.get_params()
    params = dict(args, **aux)
    path = mx.onnx.export_model(net, params, [(2, 784)], np.float32, 'mlp.onnx')
    sym, arg, aux = mx.onnx.import_model(path)
    print(os.path.basename(path), sorted(sym.list_arguments())[:2])
""")


def test_works_from_a_folder_with_a_users_converters_and_models(tmp_path):
    (tmp_path / "converters.py").write_text("user_converters = True\n")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "__init__.py").write_text("raise ImportError('the user models package was imported')\n")
    (tmp_path / "main.py").write_text(USER_CODE)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}    # the installed onnxsym, not the checkout
    done = subprocess.run([sys.executable, "main.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["mlp.onnx", "['data',", "'fc1_bias']"]
