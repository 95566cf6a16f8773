"""onnxsym demo: build MXNet symbolic graphs, inspect them, and run them on ONNX Runtime.

    python examples/demo.py
"""
import numpy as np

import onnxsym as mx


def main():
    # A multilayer perceptron, exactly as written for MXNet 1.x.
    data = mx.sym.Variable("data")
    fc1 = mx.sym.FullyConnected(data=data, num_hidden=128, name="fc1")
    act1 = mx.sym.Activation(fc1, act_type="relu")
    fc2 = mx.sym.FullyConnected(act1, num_hidden=64, name="fc2")
    act2 = mx.sym.Activation(fc2, act_type="relu")
    fc3 = mx.sym.FullyConnected(act2, num_hidden=10, name="fc3")
    net = mx.sym.softmax(fc3, name="prob")
    print("MLP arguments:", net.list_arguments())
    print("MLP outputs:  ", net.list_outputs())
    arg_shapes, out_shapes, aux_shapes = net.infer_shape(data=(100, 784))
    for name, shape in zip(net.list_arguments(), arg_shapes):
        print("  %-10s %s" % (name, shape))
    print("  output     %s" % (out_shapes[0],))

    # Bind with every array allocated from the inferred shapes, fill the parameters, run on ORT.
    executor = net.simple_bind(ctx=mx.cpu(), grad_req="null", data=(100, 784))
    rng = np.random.RandomState(0)
    for name, array in executor.arg_dict.items():
        array[:] = rng.uniform(-0.1, 0.1, array.shape)
    executor.forward()
    probs = executor.outputs[0].asnumpy()
    print("MLP forward on ONNX Runtime: output %s, rows sum to %.4f" % (probs.shape, probs.sum(axis=1).mean()))

    # The tutorial's small graphs.
    a, b = mx.sym.Variable("A"), mx.sym.Variable("B")
    d = (a + b) / 10 + 1
    print("(A + B) / 10 + 1 infer_shape:", d.infer_shape(A=(10, 2), B=(10, 2)))
    C = a * b
    D = mx.sym.Variable("D")
    E = C + D
    executor = mx.sym.Group([E, C]).bind(ctx=mx.cpu(), args={"A": mx.nd.ones(1) * 3, "B": mx.nd.ones(1),
                                                              "D": mx.nd.ones(1)})
    executor.forward()
    print("E = A*B + D and C = A*B with A=3, B=1, D=1:",
          {n: o.asnumpy().tolist() for n, o in executor.output_dict.items()})


if __name__ == "__main__":
    main()
