"""The programs of the core issue and of the seed tutorial (sections 1–3b), typed as a user would."""
import os
import subprocess
import sys

import numpy as np
import pytest

import onnxsym as mx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_issue_program():
    with mx.name.NameManager():
        input = mx.sym.Variable('data')
        fc1 = mx.sym.FullyConnected(data=input, num_hidden=128, name='fc1')
        act1 = mx.sym.Activation(fc1, act_type='relu')
        assert fc1.list_outputs() == ['fc1_output']
        assert fc1.list_arguments() == ['data', 'fc1_weight', 'fc1_bias']
        assert act1.list_outputs() == ['activation0_output']
    a = mx.sym.Variable('A')
    b = mx.sym.Variable('B')
    c = (a + b) / 10
    d = c + 1
    assert d.infer_shape(A=(10, 2), B=(10, 2)) == ([(10, 2), (10, 2)], [(10, 2)], [])
    A = mx.sym.Variable('A')
    B = mx.sym.Variable('B')
    C = A * B
    D = mx.sym.Variable('D')
    E = C + D
    ex = E.bind(ctx=mx.cpu(), args={'A': mx.nd.ones(1) * 3, 'B': mx.nd.ones(1), 'D': mx.nd.ones(1)})
    ex.forward()
    out = ex.outputs[0].asnumpy()
    assert out.dtype == np.float32 and out.tolist() == [4.0]
    G = mx.sym.Group([E, C])
    assert G.list_outputs() == [E.list_outputs()[0], C.list_outputs()[0]]
    ex = G.bind(ctx=mx.cpu(), args={'A': mx.nd.ones(1) * 3, 'B': mx.nd.ones(1), 'D': mx.nd.ones(1)})
    ex.forward()
    assert [o.asnumpy().tolist() for o in ex.outputs] == [[4.0], [3.0]]


def test_seed_tutorial_sections_1_to_3b():
    a = mx.nd.empty(1)
    b = mx.nd.ones(1)
    d = mx.nd.ones(1)
    a[:] = 5
    A, B, D = mx.sym.Variable('A'), mx.sym.Variable('B'), mx.sym.Variable('D')
    C = A * B
    E = C + D
    executor = E.bind(ctx=mx.cpu(), args={'A': a, 'B': b, 'D': d})
    assert sorted(executor.arg_dict) == ['A', 'B', 'D']
    executor.forward()
    np.testing.assert_allclose(executor.outputs[0].asnumpy(), [6.0])
    executor = mx.sym.Group([E, C]).bind(ctx=mx.cpu(), args={'A': a, 'B': b, 'D': d})
    executor.forward()
    np.testing.assert_allclose(executor.outputs[0].asnumpy(), [6.0])
    np.testing.assert_allclose(executor.outputs[1].asnumpy(), [5.0])


def test_demo_script_runs():
    result = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "demo.py")], capture_output=True,
                            text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "MLP forward on ONNX Runtime: output (100, 10), rows sum to 1.0000" in result.stdout
    assert "'_plus0_output': [4.0]" in result.stdout or "[4.0]" in result.stdout


SEED = os.path.join(ROOT, "..", "shared", "examples", "seed_tutorial.py")


@pytest.mark.skipif(not os.path.exists(SEED), reason="the seed tutorial lives in ../shared (CI and sessions have it)")
def test_seed_tutorial_passes_unchanged():
    result = subprocess.run([sys.executable, SEED], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all sections passed" in result.stdout
