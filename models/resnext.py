"""ResNeXt as in MXNet's example/image-classification/symbols/resnext.py: ResNet v1 units whose 3x3 convolution
is grouped (num_group, default 32) over num_filter/2 bottleneck channels. Unit counts as in models.resnet, but
here images up to 32 pixels high (not 28) get the 3-stage CIFAR layout."""
import onnxsym as mx

from .resnet import classifier, input_data, stage_layout, stages, stem

__all__ = ["get_symbol", "residual_unit", "resnext"]


def residual_unit(data, num_filter, stride, dim_match, name, bottle_neck=True, num_group=32, bn_mom=0.9,
                  workspace=256):
    """One aggregated-transform unit: Conv-BN-ReLU stack (grouped 3x3 in the bottleneck), + shortcut, ReLU."""
    def conv_bn(x, index, filters, kernel, conv_stride, pad, **groups):
        x = mx.sym.Convolution(data=x, num_filter=filters, kernel=kernel, stride=conv_stride, pad=pad,
                               no_bias=True, workspace=workspace, name="%s_conv%d" % (name, index), **groups)
        return mx.sym.BatchNorm(data=x, fix_gamma=False, eps=2e-5, momentum=bn_mom, name="%s_bn%d" % (name, index))

    def relu(x, suffix):
        return mx.sym.Activation(data=x, act_type="relu", name=name + suffix)

    if bottle_neck:
        width = int(num_filter * 0.5)
        body = relu(conv_bn(data, 1, width, (1, 1), (1, 1), (0, 0)), "_relu1")
        body = relu(conv_bn(body, 2, width, (3, 3), stride, (1, 1), num_group=num_group), "_relu2")
        body = conv_bn(body, 3, num_filter, (1, 1), (1, 1), (0, 0))
    else:
        body = relu(conv_bn(data, 1, num_filter, (3, 3), stride, (1, 1)), "_relu1")
        body = conv_bn(body, 2, num_filter, (3, 3), (1, 1), (1, 1))
    if dim_match:
        shortcut = data
    else:
        shortcut_conv = mx.sym.Convolution(data=data, num_filter=num_filter, kernel=(1, 1), stride=stride,
                                           no_bias=True, workspace=workspace, name=name + "_sc")
        shortcut = mx.sym.BatchNorm(data=shortcut_conv, fix_gamma=False, eps=2e-5, momentum=bn_mom,
                                    name=name + "_sc_bn")
    return relu(body + shortcut, "_relu")


def resnext(units, num_stages, filter_list, num_classes, num_group, image_shape, bottle_neck=True, bn_mom=0.9,
            workspace=256, dtype="float32"):
    """The whole ResNeXt network for the given stage layout."""
    if len(units) != num_stages:
        raise ValueError("resnext: %d unit counts for %d stages" % (len(units), num_stages))
    data = mx.sym.BatchNorm(data=input_data(dtype), fix_gamma=True, eps=2e-5, momentum=bn_mom, name="bn_data")
    body = stem(data, filter_list[0], image_shape, bn_mom, workspace)
    body = stages(body, units, filter_list, lambda x, filters, stride, dim_match, name: residual_unit(
        x, filters, stride, dim_match, name, bottle_neck, num_group, bn_mom, workspace))
    return classifier(body, num_classes, dtype)


def get_symbol(num_classes, num_layers, image_shape, num_group=32, conv_workspace=256, dtype="float32", **kwargs):
    """MXNet's resnext get_symbol; image_shape like "3,224,224" (a tuple works too)."""
    units, filter_list, bottle_neck = stage_layout(num_layers, image_shape, cifar_height=32)
    return resnext(units, len(units), filter_list, num_classes, num_group, image_shape, bottle_neck,
                   workspace=conv_workspace, dtype=dtype)
