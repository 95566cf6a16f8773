"""A new user's first hour: the README's commands as written, the examples, the package's metadata and LICENSE.

CI (.ci/run) runs the README's Quick start in a fresh clone and a fresh venv; these tests run the rest: the
command-line examples typed literally, the main job's output folder, the tutorial, and what the wheel declares.
"""
import ast
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request
import xml.etree.ElementTree

import numpy as np
import pytest
from packaging.specifiers import SpecifierSet

import onnxsym

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# sha256 of https://www.apache.org/licenses/LICENSE-2.0.txt, the Apache License 2.0 as the ASF publishes it
APACHE_2_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"
CHECKED_MINORS = range(6, 15)      # Python 3.6 ... 3.14 (released): the classifiers list exactly the supported ones


def _read(name):
    with open(os.path.join(ROOT, name), encoding="utf-8") as handle:
        return handle.read()


def _pyproject():
    tomllib = pytest.importorskip("tomllib")       # Python 3.11+
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as handle:
        return tomllib.load(handle)


def _bash_blocks(section):
    """The ```bash blocks of README.md's `## section` (up to the next `## ` heading), as lists of lines."""
    readme = _read("README.md")
    start = readme.index("\n## %s\n" % section)
    end = readme.find("\n## ", start + 1)
    text = readme[start:end if end >= 0 else None]
    return [[line.strip() for line in block.strip("\n").splitlines()]
            for block in re.findall(r"^ *```bash\n(.*?)^ *```$", text, re.S | re.M)]


def _env():
    """The checkout's code, this interpreter's venv first on PATH (its `python`, its `onnxsym` console script)."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


def _python(args, cwd, timeout=300):
    return subprocess.run([sys.executable] + args, cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=timeout)


# --- LICENSE and package metadata ----------------------------------------------------------------------------

def test_license_is_the_apache_2_text():
    with open(os.path.join(ROOT, "LICENSE"), "rb") as handle:
        text = handle.read()
    assert text.split(b"\n")[1:3] == [b" " * 33 + b"Apache License", b" " * 27 + b"Version 2.0, January 2004"]
    assert hashlib.sha256(text).hexdigest() == APACHE_2_SHA256


def test_pyproject_declares_license_urls_classifiers_and_a_single_version():
    config = _pyproject()
    project = config["project"]
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    assert "setuptools>=77" in config["build-system"]["requires"]     # PEP 639 license fields
    assert sorted(project["urls"]) == ["Documentation", "Homepage", "Issues", "Source"]
    assert all(url.startswith("https://") for url in project["urls"].values())
    classifiers = project["classifiers"]
    for prefix in ("Development Status :: ", "Intended Audience :: ", "Operating System :: ",
                   "Topic :: Scientific/Engineering :: Artificial Intelligence"):
        assert any(c.startswith(prefix) for c in classifiers), prefix
    assert not any(c.startswith("License :: ") for c in classifiers)     # PEP 639: the expression replaces them
    # One version: pyproject reads onnxsym.base.__version__ (mx.__version__), a literal setuptools reads without
    # importing anything.
    assert "version" not in project and project["dynamic"] == ["version"]
    assert config["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "onnxsym.base.__version__"}
    tree = ast.parse(_read(os.path.join("onnxsym", "base.py")))
    literals = [node.value.value for node in tree.body if isinstance(node, ast.Assign)
                and [getattr(t, "id", None) for t in node.targets] == ["__version__"]
                and isinstance(node.value, ast.Constant)]
    assert literals == [onnxsym.__version__]


def test_requires_python_matches_the_classifiers_and_the_readme():
    project = _pyproject()["project"]
    supported = SpecifierSet(project["requires-python"])
    minors = [m for m in CHECKED_MINORS if "3.%d" % m in supported]
    listed = [m for m in CHECKED_MINORS if "Programming Language :: Python :: 3.%d" % m in project["classifiers"]]
    assert listed == minors and minors == list(range(minors[0], minors[-1] + 1))
    assert "%d.%d" % sys.version_info[:2] in supported
    # plain onnxruntime, never the discontinued training build (no wheel beyond 3.12, clashes with onnxruntime)
    assert any(d.startswith("onnxruntime>=") for d in project["dependencies"])
    assert not any(d.startswith("onnxruntime-training") for d in project["dependencies"])
    quick_start = _read("README.md").split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert "Python 3.%d–3.%d" % (minors[0], minors[-1]) in quick_start
    assert "CPython " + ", ".join("3.%d" % m for m in minors[:-1]) + " and 3.%d" % minors[-1] in quick_start


def test_version_is_the_installed_distributions():
    assert onnxsym.__version__ == importlib.metadata.version("onnxsym")


INSTALLED = """
import importlib.metadata, json
dist = importlib.metadata.distribution('onnxsym')
meta = dist.metadata
print(json.dumps({key: meta.get_all(key) or [] for key in
                  ['Version', 'License-Expression', 'License-File', 'Requires-Python', 'Classifier', 'Project-URL']}
                 | {'direct_url': dist.read_text('direct_url.json'), 'license': dist.read_text('licenses/LICENSE')}))
"""


def test_installed_distribution_metadata_is_pyprojects(tmp_path):
    """What pip installed from this checkout (CI: `pip install .`; a developer: `pip install -e .`)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}    # out of the checkout: no in-tree egg-info
    done = subprocess.run([sys.executable, "-c", INSTALLED], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    installed = json.loads(done.stdout)
    url = json.loads(installed["direct_url"] or "{}").get("url", "")
    source = urllib.request.url2pathname(urllib.parse.urlparse(url).path) if url.startswith("file:") else url
    if not source or os.path.realpath(source) != os.path.realpath(ROOT):
        pytest.skip("the installed onnxsym was installed from %s, not from this checkout" % (source or "an index"))
    project = _pyproject()["project"]
    stale = "; the installed metadata is older than pyproject.toml: run `pip install -e .` (or `pip install .`)"
    assert installed["Version"] == [onnxsym.__version__], stale
    assert installed["License-Expression"] == [project["license"]], stale
    assert installed["License-File"] == project["license-files"], stale
    assert installed["license"] == _read("LICENSE"), stale
    assert SpecifierSet(installed["Requires-Python"][0]) == SpecifierSet(project["requires-python"]), stale
    assert installed["Classifier"] == project["classifiers"], stale
    assert installed["Project-URL"] == ["%s, %s" % item for item in project["urls"].items()], stale


# --- the examples ----------------------------------------------------------------------------------------------

def test_main_job_writes_its_files_into_digits_model_by_default(tmp_path):
    pytest.importorskip("sklearn")      # the README installs it with the `demo` extra
    assert ['pip install ".[demo]" && python examples/train_digits.py'] == [
        line.split("  #")[0].strip() for line in _bash_blocks("Quick start")[0] if "train_digits" in line]
    done = _python([os.path.join(ROOT, "examples", "train_digits.py")], tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(tmp_path)) == ["digits-model"]
    assert sorted(os.listdir(tmp_path / "digits-model")) == ["digits-0010.params", "digits-symbol.json",
                                                           "digits.onnx"]
    accuracy = float(re.search(r"validation accuracy after 10 epochs: ([0-9.]+)", done.stdout).group(1))
    assert accuracy > 0.97       # the README: about 98% in 10 epochs


def test_main_job_creates_a_nested_out_folder(tmp_path):
    pytest.importorskip("sklearn")
    done = _python([os.path.join(ROOT, "examples", "train_digits.py"), "--epochs", "1", "--out", "new/nested/run"],
                   tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(tmp_path / "new" / "nested" / "run")) == ["digits-0001.params", "digits-symbol.json",
                                                                     "digits.onnx"]
    import onnxruntime
    session = onnxruntime.InferenceSession(str(tmp_path / "new" / "nested" / "run" / "digits.onnx"),
                                           providers=["CPUExecutionProvider"])
    probabilities = session.run(None, {"data": np.full((3, 64), 0.5, np.float32)})[0]
    assert probabilities.shape == (3, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)


def test_main_job_fails_before_training_when_out_cannot_be_created(tmp_path):
    (tmp_path / "a-file").write_text("not a folder\n")
    done = _python([os.path.join(ROOT, "examples", "train_digits.py"), "--out", "a-file/models"], tmp_path)
    assert done.returncode != 0
    assert done.stdout == ""                                             # nothing trained, nothing printed
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("train_digits.py: "), done.stderr
    assert "a-file/models" in done.stderr and "Not a directory" in done.stderr
    assert sorted(os.listdir(tmp_path)) == ["a-file"]


def test_tutorial_walks_every_section(tmp_path):
    done = _python([os.path.join(ROOT, "examples", "tutorial.py")], tmp_path, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "all sections passed"
    titles = [line[4:] for line in lines if line.startswith("ok  ")]
    sections = ["symbols", "infer_shape", "bind / forward", "Group", "backward", "CustomOp", "simple_bind",
                "Module.fit", "viz.plot_network"]     # the seed tutorial's sections, in its order
    assert len(titles) == len(sections) and all(t.startswith(s) for t, s in zip(titles, sections)), titles
    assert os.listdir(tmp_path) == []            # it writes only to a temporary folder


def test_readme_points_at_the_tutorial_inside_the_repository():
    readme = _read("README.md")
    assert "examples/tutorial.py" in readme and "../" not in readme
    assert os.path.isfile(os.path.join(ROOT, "examples", "tutorial.py"))


def test_readme_operator_count_is_what_onnxsym_ops_counts():
    claimed = re.findall(r"\*\*(\d+) MXNet operators\*\*", _read("README.md"))
    assert claimed == [str(len(onnxsym.onnx.get_operator_support()))]


def test_ci_runs_the_readme_quick_start_exactly():
    done = subprocess.run(["bash", os.path.join(ROOT, ".ci", "run"), "--print"], capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    quick_start = _bash_blocks("Quick start")[0]
    assert done.stdout.splitlines() == quick_start
    commands = [line.split("  #")[0].strip() for line in quick_start]
    assert commands[0] == "python3 -m venv .venv && . .venv/bin/activate"        # a venv before any pip install
    assert [c.split(" && ")[0] for c in commands[1:]] == ['pip install ".[demo]"', 'pip install ".[test]"']


@pytest.mark.skipif(shutil.which("dot") is None, reason="`onnxsym plot` to .svg needs Graphviz's dot")
def test_readme_command_line_examples_typed_literally(tmp_path):
    """The README's command that makes the files, then each `onnxsym` line, through bash in a new folder."""
    blocks = _bash_blocks("What works today")
    make = [block for block in blocks if any("make_cli_files" in line for line in block)]
    cli = [block for block in blocks if block and all(line.startswith("onnxsym ") for line in block)]
    assert len(make) == 1 and len(cli) == 1, blocks
    assert make[0] == ["python examples/make_cli_files.py"]
    os.symlink(os.path.join(ROOT, "examples"), tmp_path / "examples")   # `examples/...` as from the repository root
    outputs = {}
    for line in make[0] + cli[0]:
        done = subprocess.run(["bash", "-c", line], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, (line, done.stdout, done.stderr)
        outputs[line.split()[1]] = done.stdout
    assert set(outputs) >= {"examples/make_cli_files.py", "--version", "convert", "info", "plot", "run", "bench", "ops"}
    assert outputs["--version"].startswith("onnxsym %s (onnx " % onnxsym.__version__)
    assert outputs["ops"].strip() == str(len(onnxsym.onnx.get_operator_support()))
    for name in ("resnet-18-symbol.json", "resnet-18-0000.params", "x.npy", "r18.onnx", "r18.svg", "out.npz"):
        assert (tmp_path / name).is_file(), name
    # The files are what the lines say: an image batch, a ResNet-18 .onnx that ONNX Runtime runs to out.npz's
    # numbers, an SVG picture of the network.
    import onnx
    import onnxruntime
    x = np.load(tmp_path / "x.npy")
    assert x.shape == (1, 3, 224, 224) and x.dtype == np.float32
    model = onnx.load(str(tmp_path / "r18.onnx"))
    assert sum(node.op_type == "Conv" for node in model.graph.node) == 21       # ResNet-18: 17 + 3 shortcuts + stem
    session = onnxruntime.InferenceSession(str(tmp_path / "r18.onnx"), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"data": x})
    with np.load(tmp_path / "out.npz") as saved:
        assert list(saved) == [output.name for output in session.get_outputs()]
        np.testing.assert_allclose(saved[list(saved)[0]], expected[0], rtol=1e-4, atol=1e-6)
        assert saved[list(saved)[0]].shape == (1, 1000)
    svg = xml.etree.ElementTree.parse(tmp_path / "r18.svg").getroot()
    assert svg.tag.endswith("svg") and "conv0" in (tmp_path / "r18.svg").read_text()
    assert "21  Conv" in re.sub(r" +", "  ", outputs["info"]) and "softmax_output" in outputs["info"]
    assert "samples/s" in outputs["bench"]
