"""Original (post-activation) ResNet as in MXNet's example/image-classification/symbols/resnet-v1.py.

Same layouts as models.resnet (3-stage CIFAR for height <= 28, 4-stage otherwise); each unit is Conv-BN-ReLU with
the stride on its first convolution, the projection shortcut is Conv-BN, and there is no final BN-ReLU.
"""
import onnxsym as mx

from .resnet import classifier, input_data, stage_layout, stages, stem

__all__ = ["get_symbol", "residual_unit", "resnet"]


def residual_unit(data, num_filter, stride, dim_match, name, bottle_neck=True, bn_mom=0.9, workspace=256):
    """One unit: (Conv-BN-ReLU) then Conv-BN (1x1-3x3-1x1 with num_filter/4 inside for a bottleneck), + shortcut,
    ReLU."""
    def conv_bn(x, index, filters, kernel, conv_stride, pad):
        x = mx.sym.Convolution(data=x, num_filter=filters, kernel=kernel, stride=conv_stride, pad=pad, no_bias=True,
                               workspace=workspace, name="%s_conv%d" % (name, index))
        return mx.sym.BatchNorm(data=x, fix_gamma=False, eps=2e-5, momentum=bn_mom, name="%s_bn%d" % (name, index))

    def relu(x, index):
        return mx.sym.Activation(data=x, act_type="relu", name="%s_relu%d" % (name, index))

    if bottle_neck:
        body = relu(conv_bn(data, 1, int(num_filter * 0.25), (1, 1), stride, (0, 0)), 1)
        body = relu(conv_bn(body, 2, int(num_filter * 0.25), (3, 3), (1, 1), (1, 1)), 2)
        body = conv_bn(body, 3, num_filter, (1, 1), (1, 1), (0, 0))
    else:
        body = relu(conv_bn(data, 1, num_filter, (3, 3), stride, (1, 1)), 1)
        body = conv_bn(body, 2, num_filter, (3, 3), (1, 1), (1, 1))
    if dim_match:
        shortcut = data
    else:
        conv1sc = mx.sym.Convolution(data=data, num_filter=num_filter, kernel=(1, 1), stride=stride, no_bias=True,
                                     workspace=workspace, name=name + "_conv1sc")
        shortcut = mx.sym.BatchNorm(data=conv1sc, fix_gamma=False, eps=2e-5, momentum=bn_mom, name=name + "_sc")
    return relu(body + shortcut, 3)


def resnet(units, num_stages, filter_list, num_classes, image_shape, bottle_neck=True, bn_mom=0.9, workspace=256,
           dtype="float32"):
    """The whole v1 network for the given stage layout."""
    if len(units) != num_stages:
        raise ValueError("resnet: %d unit counts for %d stages" % (len(units), num_stages))
    body = stem(input_data(dtype), filter_list[0], image_shape, bn_mom, workspace, cifar_bn=True)
    body = stages(body, units, filter_list, lambda x, filters, stride, dim_match, name: residual_unit(
        x, filters, stride, dim_match, name, bottle_neck, workspace=workspace))     # (MXNet passes no bn_mom)
    return classifier(body, num_classes, dtype)


def get_symbol(num_classes, num_layers, image_shape, conv_workspace=256, dtype="float32", **kwargs):
    """MXNet's resnet-v1 get_symbol; image_shape like "3,224,224" (a tuple works too)."""
    units, filter_list, bottle_neck = stage_layout(num_layers, image_shape)
    return resnet(units, len(units), filter_list, num_classes, image_shape, bottle_neck, workspace=conv_workspace,
                  dtype=dtype)
