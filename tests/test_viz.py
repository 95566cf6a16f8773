"""mx.viz: the Graphviz description MXNet draws (labels, colors, shapes on edges) and the layer table."""
import numpy as np

import onnxsym as mx


def lenet_like():
    data = mx.sym.Variable("data")
    net = mx.sym.Convolution(data, kernel=(3, 3), num_filter=8, stride=(2, 2), name="conv1")
    net = mx.sym.BatchNorm(net, name="bn1")
    net = mx.sym.Activation(net, act_type="relu", name="relu1")
    net = mx.sym.Pooling(net, kernel=(2, 2), stride=(2, 2), pool_type="max", name="pool1")
    net = mx.sym.FullyConnected(mx.sym.Flatten(net), num_hidden=10, name="fc1")
    return mx.sym.SoftmaxOutput(net, name="softmax")


def test_plot_network_labels_edges_and_hidden_weights():
    graph = mx.viz.plot_network(lenet_like(), shape={"data": (1, 3, 16, 16)})
    source = graph.source
    assert source.startswith("digraph plot")
    assert 'label="Convolution\n3x3/2x2, 8"' in source
    assert 'label="FullyConnected\n10"' in source and 'label="Activation\nrelu"' in source
    assert 'label="Pooling\nmax, 2x2/2x2"' in source
    assert "conv1_weight" not in source and "bn1_moving_mean" not in source
    assert 'conv1 -> data [label="3x16x16"' in source          # the input's shape on its edge
    assert 'relu1 -> bn1 [label="8x7x7"' in source
    shown = mx.viz.plot_network(lenet_like(), hide_weights=False).source
    assert "conv1_weight" in shown


def test_print_summary_counts_parameters(capsys):
    mx.viz.print_summary(lenet_like(), shape={"data": (1, 3, 16, 16)})
    text = capsys.readouterr().out
    conv_params = 8 * 3 * 3 * 3 + 8
    bn_params = 8 * 4
    fc_params = 10 * (8 * 3 * 3) + 10
    assert "conv1(Convolution)" in text and "8x7x7" in text
    assert "Total params: %d" % (conv_params + bn_params + fc_params) in text
