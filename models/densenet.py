"""DenseNet-BC as in MXNet's example/image-classification/symbols/densenet.py (121/161/169/201/264 layers).

Dense blocks concatenate each BN-ReLU-Conv(1x1, 4k)-BN-ReLU-Conv(3x3, k) unit's output onto its input; transitions
are BN-ReLU-Conv(1x1) with compression `reduction` and 2x2 average pooling. Inputs of at least 32x32 work (the
classifier uses global average pooling).
"""
import math

import onnxsym as mx

__all__ = ["get_symbol", "BasicBlock", "DenseBlock", "TransitionBlock", "DENSENET_UNITS"]

DENSENET_UNITS = {121: [6, 12, 24, 16], 161: [6, 12, 36, 24], 169: [6, 12, 32, 32], 201: [6, 12, 48, 32],
                  264: [6, 12, 64, 48]}


def _bn_relu_conv(data, name, index, num_filter, kernel, stride, pad, drop_out, bn_mom, workspace):
    """BN-ReLU-Conv named name_bn<i>/_relu<i>/_conv<i>, then Dropout name_dp<i> when drop_out > 0."""
    body = mx.sym.BatchNorm(data=data, fix_gamma=False, eps=2e-5, momentum=bn_mom, name="%s_bn%d" % (name, index))
    body = mx.sym.Activation(data=body, act_type="relu", name="%s_relu%d" % (name, index))
    body = mx.sym.Convolution(data=body, num_filter=num_filter, kernel=kernel, stride=stride, pad=pad, no_bias=True,
                              workspace=workspace, name="%s_conv%d" % (name, index))
    if drop_out > 0:
        body = mx.sym.Dropout(data=body, p=drop_out, name="%s_dp%d" % (name, index))
    return body


def BasicBlock(data, growth_rate, stride, name, bottle_neck=True, drop_out=0.0, bn_mom=0.9, workspace=512):
    """The growth_rate new feature maps of one dense unit (1x1 bottleneck to 4*growth_rate first when bottle_neck)."""
    if bottle_neck:
        body = _bn_relu_conv(data, name, 1, int(growth_rate * 4), (1, 1), (1, 1), (0, 0), drop_out, bn_mom,
                             workspace)
        return _bn_relu_conv(body, name, 2, int(growth_rate), (3, 3), stride, (1, 1), drop_out, bn_mom, workspace)
    return _bn_relu_conv(data, name, 1, int(growth_rate), (3, 3), (1, 1), (1, 1), drop_out, bn_mom, workspace)


def DenseBlock(units_num, data, growth_rate, name, bottle_neck=True, drop_out=0.0, bn_mom=0.9, workspace=512):
    """units_num BasicBlocks, each output concatenated onto the running feature map (name_concat<i>)."""
    for i in range(units_num):
        block = BasicBlock(data, growth_rate=growth_rate, stride=(1, 1), name=name + "_unit%d" % (i + 1),
                           bottle_neck=bottle_neck, drop_out=drop_out, bn_mom=bn_mom, workspace=workspace)
        data = mx.sym.Concat(data, block, name=name + "_concat%d" % (i + 1))
    return data


def TransitionBlock(num_stage, data, num_filter, stride, name, drop_out=0.0, bn_mom=0.9, workspace=512):
    """BN-ReLU-Conv(1x1) to num_filter channels, then 2x2/2 average pooling named name_pool<num_stage+1>."""
    body = _bn_relu_conv(data, name, 1, num_filter, (1, 1), stride, (0, 0), drop_out, bn_mom, workspace)
    return mx.sym.Pooling(body, global_pool=False, kernel=(2, 2), stride=(2, 2), pool_type="avg",
                          name=name + "_pool%d" % (num_stage + 1))


def get_symbol(num_classes, num_layers=121, reduction=0.5, drop_out=0.2, bottle_neck=True, bn_mom=0.9,
               workspace=512, num_stage=4, growth_rate=32, **kwargs):
    """MXNet's densenet get_symbol: a 7x7/2 stem with max pooling, num_stage dense blocks, global pooling, fc1."""
    if num_layers not in DENSENET_UNITS:
        raise ValueError("please specify num-layers, 121,169, 201, or 264")
    units = DENSENET_UNITS[num_layers]
    if len(units) != num_stage:
        raise ValueError("densenet-%d has %d stages, not num_stage=%d" % (num_layers, len(units), num_stage))
    n_channels = 2 * growth_rate
    data = mx.sym.Variable(name="data")
    data = mx.sym.BatchNorm(data=data, fix_gamma=True, eps=2e-5, momentum=bn_mom, name="bn_data")
    body = mx.sym.Convolution(data=data, num_filter=growth_rate * 2, kernel=(7, 7), stride=(2, 2), pad=(3, 3),
                              no_bias=True, name="conv0", workspace=workspace)
    body = mx.sym.BatchNorm(data=body, fix_gamma=False, eps=2e-5, momentum=bn_mom, name="bn0")
    body = mx.sym.Activation(data=body, act_type="relu", name="relu0")
    body = mx.sym.Pooling(data=body, kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="max")
    block = dict(growth_rate=growth_rate, bottle_neck=bottle_neck, drop_out=drop_out, bn_mom=bn_mom,
                 workspace=workspace)
    for i in range(num_stage - 1):
        body = DenseBlock(units[i], body, name="DBstage%d" % (i + 1), **block)
        n_channels = int(math.floor((n_channels + units[i] * growth_rate) * reduction))
        body = TransitionBlock(i, body, n_channels, stride=(1, 1), name="TBstage%d" % (i + 1), drop_out=drop_out,
                               bn_mom=bn_mom, workspace=workspace)
    body = DenseBlock(units[num_stage - 1], body, name="DBstage%d" % num_stage, **block)
    body = mx.sym.BatchNorm(data=body, fix_gamma=False, eps=2e-5, momentum=bn_mom, name="bn1")
    body = mx.sym.Activation(data=body, act_type="relu", name="relu1")
    pool1 = mx.sym.Pooling(data=body, global_pool=True, kernel=(7, 7), pool_type="avg", name="pool1")
    fc1 = mx.sym.FullyConnected(data=mx.sym.Flatten(data=pool1), num_hidden=num_classes, name="fc1")
    return mx.sym.SoftmaxOutput(data=fc1, name="softmax")
