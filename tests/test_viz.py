"""mx.viz against what MXNet 1.9.1 drew and printed for the same graphs (tests/fixtures/mxnet/viz_cases.json, made
by tests/fixtures/make_viz_fixtures.py): each graph is loaded from MXNet's own tojson text, every recorded
plot_network call must give the same Digraph source (nodes, labels, attributes, edges and their labels, in
order) and every print_summary call the same text, line by line; errors and warnings must match too."""
import json
import os
import re

import numpy as np
import pytest

import onnxsym as mx
from tests.fixtures.make_viz_fixtures import (BAD_INPUTS, CALLS, GRAPHS, bad_input_symbol, call_arguments,
                                              register_custom, run_call)

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "mxnet")
with open(os.path.join(FIXTURES, "viz_cases.json")) as _handle:
    _RECORDED = json.load(_handle)
RECORDED, RECORDED_FAILURES, BAD_RECORDED = (_RECORDED[k] for k in ("cases", "mxnet_failures", "bad_inputs"))
register_custom(mx)

# Calls where MXNet's C++ shape functions fail on inputs of unknown shape (Custom's Python infer_shape, topk's axis
# check, UpSampling's scale) before its Python code can say "Input shape is incomplete"; onnxsym's inference leaves
# those shapes unknown, so the same call reaches MXNet's Python-level ValueError instead.
UNKNOWN_SHAPE_FAILURES = {("custom", "plot_no_shapes"), ("custom", "summary_no_shapes"),
                          ("multi_output", "plot_no_shapes"), ("multi_output", "summary_no_shapes"),
                          ("residual", "plot_no_shapes"), ("residual", "summary_no_shapes")}
# MXNet hands a Custom op's infer_type the unknown input types as None and its default infer_type returns them
# unchanged, so the custom weight's type stays unknown ("Input type is incomplete"); onnxsym's Custom op
# (onnxsym/custom/op.py) fills them with the first input's type before asking the prop.
STATEMENT = re.compile(r'^("(?:[^"\\]|\\.)*"|\S+)(?: -> ("(?:[^"\\]|\\.)*"|\S+))? \[(.*)\]$', re.S)
ATTRIBUTE = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|[^ "]+)')


def load(graph):
    return mx.sym.load_json(RECORDED[graph]["json"])


def dot_statements(source):
    """A Digraph source as its header and a list of (node, edge head or None, {attribute: value}) statements."""
    # graphviz 0.20+ ends the source with a newline that 0.8.4 (the version under the recording MXNet) leaves out
    body = source.rstrip("\n")
    assert body.endswith("\n}"), source
    header, *statements = body[:-2].split("\n\t")
    parsed = []
    for statement in statements:
        match = STATEMENT.match(statement)
        assert match, statement
        parsed.append((match.group(1), match.group(2), dict(ATTRIBUTE.findall(match.group(3)))))
    return header, parsed


def assert_same_plot(actual, expected):
    header, statements = dot_statements(actual)
    expected_header, expected_statements = dot_statements(expected)
    assert header == expected_header
    nodes = [s for s in statements if s[1] is None]
    expected_nodes = [s for s in expected_statements if s[1] is None]
    assert [s[0] for s in nodes] == [s[0] for s in expected_nodes]          # which nodes, in order
    for node, expected_node in zip(nodes, expected_nodes):
        assert node == expected_node                                        # label, shape, fillcolor, size
    edges = [s for s in statements if s[1] is not None]
    assert edges == [s for s in expected_statements if s[1] is not None]    # direction, label, arrow
    assert statements == expected_statements
    assert actual.rstrip("\n") == expected.rstrip("\n")


@pytest.mark.parametrize("graph,call", [pytest.param(graph, call, id="%s-%s" % (graph, call))
                                        for graph in GRAPHS for call in CALLS])
def test_matches_mxnet(graph, call):
    expected = RECORDED[graph]["calls"][call]
    function, kwargs = call_arguments(graph, call)
    text, error, caught = run_call(mx.viz, load(graph), function, kwargs)
    assert caught == expected["warnings"]
    if (graph, call) in UNKNOWN_SHAPE_FAILURES:
        assert expected["error"][0] == "MXNetError" and error == ["ValueError", "Input shape is incomplete"]
    elif expected["error"] is not None:
        assert error is not None and error[0] == expected["error"][0], (error, expected["error"])
        if error[0] != "MXNetError":        # MXNet's C++ messages are its own; the Python ones are the contract
            assert error == expected["error"]
    elif function == "plot_network":
        assert error is None, error
        assert_same_plot(text, expected["text"])
    else:
        assert error is None, error
        assert text.splitlines() == expected["text"].splitlines()
        assert text == expected["text"]


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_raises_what_mxnet_raises(name):
    value, function, kwargs = BAD_INPUTS[name]
    expected = BAD_RECORDED[name]
    _, error, _ = run_call(mx.viz, bad_input_symbol(mx, value, RECORDED), function, kwargs)
    assert error is not None and error[0] == expected[0], (error, expected)
    if name == "plot_label_in_node_attrs":      # the message names graphviz's class, which moved between versions
        assert error[1].endswith("got multiple values for keyword argument 'label'"), error
    elif error[0] != "MXNetError":
        assert error == expected


def failure_case(name):
    """The graph of an MXNET_FAILURES case, after checking that MXNet 1.9.1 did fail on it."""
    recorded = RECORDED_FAILURES[name]
    assert recorded["error"] is not None and recorded["error"][0] in ("KeyError", "IndexError"), recorded
    return mx.sym.load_json(recorded["json"])


def test_pooling_without_pool_type_is_drawn_as_max():
    source = mx.viz.plot_network(failure_case("pool_type_default")).source
    assert 'pool [label="Pooling\nmax, 2x2/1" fillcolor="#80b1d3"' in source
    assert 'gpool [label="Pooling\nmax, []/1" fillcolor="#80b1d3"' in source


def test_edges_from_a_multi_output_node_without_num_outputs_show_their_own_output():
    source = mx.viz.plot_network(failure_case("multi_output_without_num_outputs"), shape={"data": (2, 5)},
                                 dtype={"data": np.float32}).source
    assert source.count('add -> top [label="2(float32)" arrowtail=open dir=back]') == 2


def test_summary_counts_no_channels_for_a_one_dimensional_previous_layer(capsys):
    mx.viz.print_summary(failure_case("one_dimensional_previous_layer"), shape={"data": (2, 5)})
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert ["fc(FullyConnected)", "4", "24", "data"] in rows
    assert ["total(sum)", "0", "fc"] in rows and ["loss(MakeLoss)", "0", "total"] in rows
    assert ["Total", "params:", "24"] in rows
