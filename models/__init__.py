"""Symbol builders for the classic MXNet models of example/image-classification/symbols, each with MXNet's
`get_symbol(num_classes, ...)`: alexnet, densenet, inception_bn, lenet, mlp, mobilenet, mobilenetv2, resnet
(pre-activation v2), resnet_v1, resnext, vgg."""

__all__ = ["alexnet", "densenet", "inception_bn", "lenet", "mlp", "mobilenet", "mobilenetv2", "resnet", "resnet_v1",
           "resnext", "vgg"]
