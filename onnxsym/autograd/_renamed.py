"""Copies of ONNX nodes with their values renamed, through their subgraphs (If/Loop/Scan bodies), for the
expansions that splice a function body or a loop iteration into a graph (expand.py, unroll.py)."""
import itertools

import onnx

__all__ = ["renamed_nodes"]


def renamed_nodes(nodes, rename, prefix, attributes=None):
    """Copies of `nodes` with every value name passed through `rename` (at any subgraph depth: a subgraph's outer
    references and its own names alike), node names under `prefix`, and attribute references (`ref_attr_name`,
    in function bodies) replaced from `attributes` ({name: AttributeProto}; a reference not there is dropped)."""
    counter = itertools.count()

    def graph_copy(graph):
        out = onnx.GraphProto()
        out.CopyFrom(graph)
        for value in (*out.input, *out.output, *out.value_info):
            value.name = rename(value.name)
        for tensor in out.initializer:
            tensor.name = rename(tensor.name)
        del out.node[:]
        out.node.extend(node_copy(n) for n in graph.node)
        return out

    def node_copy(node):
        out = onnx.NodeProto()
        out.CopyFrom(node)
        del out.input[:], out.output[:], out.attribute[:]
        out.input.extend(rename(name) for name in node.input)
        out.output.extend(rename(name) for name in node.output)
        out.name = prefix + (node.name or "%s%d" % (node.op_type, next(counter)))
        for attribute in node.attribute:
            copied = onnx.AttributeProto()
            if attribute.ref_attr_name:
                if attributes is None or attribute.ref_attr_name not in attributes:
                    continue
                copied.CopyFrom(attributes[attribute.ref_attr_name])
                copied.name = attribute.name
            else:
                copied.CopyFrom(attribute)
                if attribute.type == onnx.AttributeProto.GRAPH:
                    copied.g.CopyFrom(graph_copy(attribute.g))
                elif attribute.type == onnx.AttributeProto.GRAPHS:
                    del copied.graphs[:]
                    copied.graphs.extend(graph_copy(g) for g in attribute.graphs)
            out.attribute.append(copied)
        return out

    return [node_copy(node) for node in nodes]
