"""onnxsym's tutorial: MXNet 1.x symbolic programming, section by section, each result checked.

It walks the sections of the MXNet symbol tutorial onnxsym started from (symbols and their names, shape
inference, bind and execute, several outputs, gradients, an operator written in Python, simple_bind with
BlockGrad and MakeLoss, Module.fit, visualisation) with small programs of its own, and checks every result
against plain numpy arithmetic. Run it from anywhere (a few seconds; it writes only to a temporary folder):

    python examples/tutorial.py

It prints one line per section and exits non-zero at the first wrong result.
"""
import os
import tempfile

import numpy as np

import onnxsym as mx

rng = np.random.RandomState(0)


def section(title):
    print("ok  " + title)


# 1. Symbols. A Variable is an input; each operator call returns a new Symbol whose parameters (weights, biases)
#    become arguments named after the layer. Layers without a name get an automatic one: op name + counter.
data = mx.sym.Variable('data')
conv = mx.sym.Convolution(data, kernel=(3, 3), num_filter=4, name='conv1')
relu = mx.sym.Activation(conv, act_type='relu')
pool = mx.sym.Pooling(relu, kernel=(2, 2), stride=(2, 2), pool_type='max')
fc = mx.sym.FullyConnected(mx.sym.Flatten(pool), num_hidden=3, name='fc')
assert conv.list_arguments() == ['data', 'conv1_weight', 'conv1_bias'], conv.list_arguments()
assert relu.list_outputs() == ['activation0_output'], relu.list_outputs()
assert pool.list_outputs() == ['pooling0_output'], pool.list_outputs()
assert fc.list_arguments() == ['data', 'conv1_weight', 'conv1_bias', 'fc_weight', 'fc_bias'], fc.list_arguments()
# A graph is data: MXNet's JSON text, and back.
assert mx.sym.load_json(fc.tojson()).tojson() == fc.tojson()
section("symbols, parameter names and automatic names")

# 2. Shape inference: give the input shapes, get every argument's and output's shape (weights included).
arg_shapes, out_shapes, aux_shapes = fc.infer_shape(data=(2, 1, 8, 8))
shapes = dict(zip(fc.list_arguments(), arg_shapes))
assert shapes['conv1_weight'] == (4, 1, 3, 3) and shapes['conv1_bias'] == (4,), shapes
assert shapes['fc_weight'] == (3, 4 * 3 * 3), shapes     # 8x8 -> conv 3x3 -> 6x6 -> pool 2x2 -> 3x3, 4 channels
assert out_shapes == [(2, 3)] and aux_shapes == [], (out_shapes, aux_shapes)
x, y = mx.sym.Variable('x'), mx.sym.Variable('y')
try:
    (x + y).infer_shape(x=(2, 3), y=(4, 3))
    raise AssertionError("inconsistent shapes were accepted")
except mx.MXNetError as err:                 # the message names the operator and both shapes
    assert '(2, 3)' in str(err) and '(4, 3)' in str(err), err
section("infer_shape (and its error on inconsistent shapes)")

# 3. Bind arrays to the arguments and run: an Executor computes the outputs on ONNX Runtime.
A, B, C = mx.sym.Variable('A'), mx.sym.Variable('B'), mx.sym.Variable('C')
E = A * B - C / 2
a, b, c = (rng.uniform(-1, 1, (2, 3)).astype(np.float32) for _ in range(3))
executor = E.bind(ctx=mx.cpu(), args={'A': mx.nd.array(a), 'B': mx.nd.array(b), 'C': mx.nd.array(c)})
executor.forward()
np.testing.assert_allclose(executor.outputs[0].asnumpy(), a * b - c / 2, rtol=1e-6)
# Bound arrays are the executor's inputs: change one in place and run again.
executor.arg_dict['C'][:] = 0
executor.forward()
np.testing.assert_allclose(executor.outputs[0].asnumpy(), a * b, rtol=1e-6)
section("bind / forward / arg_dict")

# 3b. Several outputs at once: Group.
F = mx.sym.exp(A) + B
G = mx.sym.Group([E, F])
assert G.list_outputs() == [E.list_outputs()[0], F.list_outputs()[0]], G.list_outputs()
executor = G.bind(ctx=mx.cpu(), args={'A': mx.nd.array(a), 'B': mx.nd.array(b), 'C': mx.nd.array(c)})
executor.forward()
np.testing.assert_allclose(executor.outputs[0].asnumpy(), a * b - c / 2, rtol=1e-6)
np.testing.assert_allclose(executor.outputs[1].asnumpy(), np.exp(a) + b, rtol=1e-6)
section("Group: two outputs from one executor")

# 3c. Gradients. E is not a loss, so backward takes the gradient of something with respect to E's output (the
#     "head gradient") and writes dSomething/dArgument into the arrays given as args_grad.
head = rng.uniform(-1, 1, (2, 3)).astype(np.float32)
grads = {name: mx.nd.zeros((2, 3)) for name in 'ABC'}
executor = E.bind(ctx=mx.cpu(), args={'A': mx.nd.array(a), 'B': mx.nd.array(b), 'C': mx.nd.array(c)},
                  args_grad=grads, grad_req={'A': 'write', 'B': 'write', 'C': 'add'})
executor.forward(is_train=True)
executor.backward(mx.nd.array(head))
np.testing.assert_allclose(grads['A'].asnumpy(), head * b, rtol=1e-6)    # dE/dA = B
np.testing.assert_allclose(grads['B'].asnumpy(), head * a, rtol=1e-6)    # dE/dB = A
np.testing.assert_allclose(grads['C'].asnumpy(), -head / 2, rtol=1e-6)   # dE/dC = -1/2
executor.backward(mx.nd.array(head))                                     # 'add' accumulates, 'write' overwrites
np.testing.assert_allclose(grads['A'].asnumpy(), head * b, rtol=1e-6)
np.testing.assert_allclose(grads['C'].asnumpy(), -head, rtol=1e-6)
section("backward: head gradients, args_grad, grad_req write/add")


# 4. An operator written in Python: y = scale * x**3, with its own backward. The Prop describes the operator
#    (arguments, outputs, shapes); its keyword arguments arrive as strings, as in MXNet.
class ScaledCube(mx.operator.CustomOp):
    def __init__(self, scale):
        super().__init__()
        self.scale = scale

    def forward(self, is_train, req, in_data, out_data, aux):
        x = in_data[0].asnumpy()
        self.assign(out_data[0], req[0], mx.nd.array(self.scale * x ** 3))

    def backward(self, req, out_grad, in_data, out_data, in_grad, aux):
        x = in_data[0].asnumpy()
        self.assign(in_grad[0], req[0], mx.nd.array(out_grad[0].asnumpy() * 3 * self.scale * x ** 2))


@mx.operator.register("tutorial_scaled_cube")
class ScaledCubeProp(mx.operator.CustomOpProp):
    def __init__(self, scale='1'):
        super().__init__(need_top_grad=True)
        self.scale = float(scale)

    def list_arguments(self):
        return ['data']

    def list_outputs(self):
        return ['output']

    def infer_shape(self, in_shape):
        return in_shape, [in_shape[0]], []

    def create_operator(self, ctx, shapes, dtypes):
        return ScaledCube(self.scale)


cube = mx.sym.Custom(mx.sym.Variable('x'), op_type='tutorial_scaled_cube', scale=0.5, name='cube')
net = mx.sym.sum(mx.sym.sin(cube), axis=1)        # the Python op sits inside an ordinary graph
assert cube.list_outputs() == ['cube_output'], cube.list_outputs()
x_value = rng.uniform(-1, 1, (2, 3)).astype(np.float32)
x_grad = mx.nd.zeros((2, 3))
executor = net.bind(ctx=mx.cpu(), args={'x': mx.nd.array(x_value)}, args_grad={'x': x_grad})
executor.forward(is_train=True)
np.testing.assert_allclose(executor.outputs[0].asnumpy(), np.sin(0.5 * x_value ** 3).sum(axis=1), rtol=1e-5)
executor.backward(mx.nd.ones(2))
np.testing.assert_allclose(x_grad.asnumpy(), np.cos(0.5 * x_value ** 3) * 1.5 * x_value ** 2, rtol=1e-5, atol=1e-7)
section("CustomOp in Python: forward and backward inside the graph")

# 4b. simple_bind allocates every array from the inferred shapes. MakeLoss turns any expression into a loss
#     (backward needs no head gradient); BlockGrad lets values through but stops gradients.
prediction, target = mx.sym.Variable('prediction'), mx.sym.Variable('target')
loss = mx.sym.MakeLoss(mx.sym.sum(mx.sym.square(prediction - mx.sym.BlockGrad(target))))
executor = loss.simple_bind(ctx=mx.cpu(), prediction=(2, 3), target=(2, 3))
assert executor.arg_dict['prediction'].shape == (2, 3)
p_value, t_value = a, b
executor.forward(is_train=True, prediction=mx.nd.array(p_value), target=mx.nd.array(t_value))
np.testing.assert_allclose(executor.outputs[0].asnumpy(), [((p_value - t_value) ** 2).sum()], rtol=1e-5)
executor.backward()
np.testing.assert_allclose(executor.grad_dict['prediction'].asnumpy(), 2 * (p_value - t_value), rtol=1e-5)
np.testing.assert_allclose(executor.grad_dict['target'].asnumpy(), np.zeros((2, 3)))
section("simple_bind / MakeLoss / BlockGrad")

# 5. Module: bind, initialize, train with fit, score and predict; checkpoints in MXNet's format.
#    Three well separated clusters of 2-D points, so a small MLP must reach near-perfect accuracy.
centers = np.array([[2, 0], [-1, 2], [-1, -2]], np.float32)
labels = rng.randint(0, 3, 600)
points = (centers[labels] + 0.4 * rng.normal(size=(600, 2))).astype(np.float32)
train_iter = mx.io.NDArrayIter(points[:500], labels[:500].astype(np.float32), batch_size=50, shuffle=True)
eval_iter = mx.io.NDArrayIter(points[500:], labels[500:].astype(np.float32), batch_size=50)
hidden = mx.sym.Activation(mx.sym.FullyConnected(mx.sym.Variable('data'), num_hidden=16, name='fc1'),
                           act_type='relu')
mlp = mx.sym.SoftmaxOutput(mx.sym.FullyConnected(hidden, num_hidden=3, name='fc2'), name='softmax')
mx.random.seed(1)
mod = mx.mod.Module(mlp)
mod.fit(train_iter, eval_data=eval_iter, initializer=mx.init.Xavier(), num_epoch=5,
        optimizer_params={'learning_rate': 0.1, 'momentum': 0.9})
accuracy = dict(mod.score(eval_iter, 'acc'))['accuracy']
assert accuracy > 0.95, accuracy
probabilities = mod.predict(eval_iter).asnumpy()
assert probabilities.shape == (100, 3)
np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)
with tempfile.TemporaryDirectory() as folder:
    prefix = os.path.join(folder, 'clusters')
    mod.save_checkpoint(prefix, 5)
    symbol, arg_params, aux_params = mx.model.load_checkpoint(prefix, 5)
assert symbol.tojson() == mlp.tojson()
w, bias = arg_params['fc1_weight'].asnumpy(), arg_params['fc1_bias'].asnumpy()
w2, bias2 = arg_params['fc2_weight'].asnumpy(), arg_params['fc2_bias'].asnumpy()
logits = np.maximum(points[500:] @ w.T + bias, 0) @ w2.T + bias2       # the saved weights, applied by numpy
expected = np.exp(logits - logits.max(axis=1, keepdims=True))
np.testing.assert_allclose(probabilities, expected / expected.sum(axis=1, keepdims=True), rtol=1e-4, atol=1e-6)
section("Module.fit / score / predict / checkpoint (validation accuracy %.3f)" % accuracy)

# 6. Visualisation: plot_network returns a graphviz.Digraph (rendering it to a picture needs Graphviz's dot).
graph = mx.viz.plot_network(fc, shape={'data': (2, 1, 8, 8)})
assert graph.source.startswith('digraph') and 'conv1' in graph.source and 'fc' in graph.source
section("viz.plot_network")
print("all sections passed")
