"""VGG 11/13/16/19 as in MXNet's example/image-classification/symbols/vgg.py (input a multiple of 32, >= 32)."""
import onnxsym as mx

__all__ = ["get_symbol", "get_feature", "get_classifier", "VGG_SPEC"]

VGG_SPEC = {11: ([1, 1, 2, 2, 2], [64, 128, 256, 512, 512]),
            13: ([2, 2, 2, 2, 2], [64, 128, 256, 512, 512]),
            16: ([2, 2, 3, 3, 3], [64, 128, 256, 512, 512]),
            19: ([2, 2, 4, 4, 4], [64, 128, 256, 512, 512])}


def get_feature(internel_layer, layers, filters, batch_norm=False, **kwargs):
    """Stages of 3x3 convolutions (optionally batch-normalized) and ReLU, each closed by 2x2 max pooling."""
    for i, num in enumerate(layers):
        for j in range(num):
            suffix = "%s_%s" % (i + 1, j + 1)
            internel_layer = mx.sym.Convolution(data=internel_layer, kernel=(3, 3), pad=(1, 1),
                                                num_filter=filters[i], name="conv" + suffix)
            if batch_norm:
                internel_layer = mx.sym.BatchNorm(data=internel_layer, name="bn" + suffix)
            internel_layer = mx.sym.Activation(data=internel_layer, act_type="relu", name="relu" + suffix)
        internel_layer = mx.sym.Pooling(data=internel_layer, pool_type="max", kernel=(2, 2), stride=(2, 2),
                                        name="pool%s" % (i + 1))
    return internel_layer


def get_classifier(input_data, num_classes, **kwargs):
    """fc6-fc7 (4096 units, ReLU, dropout 0.5) and the fc8 class scores."""
    body = mx.sym.Flatten(data=input_data, name="flatten")
    for index in (6, 7):
        body = mx.sym.FullyConnected(data=body, num_hidden=4096, name="fc%d" % index)
        body = mx.sym.Activation(data=body, act_type="relu", name="relu%d" % index)
        body = mx.sym.Dropout(data=body, p=0.5, name="drop%d" % index)
    return mx.sym.FullyConnected(data=body, num_hidden=num_classes, name="fc8")


def get_symbol(num_classes, num_layers=11, batch_norm=False, dtype="float32", **kwargs):
    """VGG-`num_layers` (11, 13, 16 or 19) with a SoftmaxOutput head named 'softmax'."""
    if num_layers not in VGG_SPEC:
        raise ValueError("Invalide num_layers {}. Possible choices are 11,13,16,19.".format(num_layers))
    layers, filters = VGG_SPEC[num_layers]
    data = mx.sym.Variable(name="data")
    if dtype == "float16":
        data = mx.sym.Cast(data=data, dtype="float16")
    classifier = get_classifier(get_feature(data, layers, filters, batch_norm), num_classes)
    if dtype == "float16":
        classifier = mx.sym.Cast(data=classifier, dtype="float32")
    return mx.sym.SoftmaxOutput(data=classifier, name="softmax")
