"""Tables of the model zoo shared by the model tests: paper-scale sizes and tiny settings of every registered model."""

from __future__ import annotations

# name -> (kwargs, exact count measured here, published figure). Published: PreAct ResNet-18 11.17M
# (kuangliu/pytorch-cifar), WRN-28-10 36.5M (Zagoruyko & Komodakis 2016, Table 1), DenseNet-BC-190 k=40
# 25.6M (Huang et al. 2017, Table 2).
CIFAR_SIZES = {
    "preact_resnet18": ({}, 11_171_146, 11.17e6),
    "wrn": ({"depth": 28, "widen": 10}, 36_479_194, 36.5e6),
    "densenet_bc": ({"depth": 190, "growth_rate": 40}, 25_624_430, 25.6e6),
}


# torchvision's published counts (model docs), 1000 classes; ResNeXt-101 32x4d is not in torchvision's
# list, 44,177,704 is the count of the Facebook/timm model of that name.
IMAGENET_SIZES = {
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnext101_32x4d": 44_177_704,
    "resnext101_64x4d": 83_455_272,
}


# name -> (kwargs, input shape, output shape) at tiny sizes; every non-ImageNet model must appear.
TINY = {
    "preact_resnet18": ({"num_classes": 10, "width": 4}, (2, 3, 32, 32), (2, 10)),
    "wrn": ({"num_classes": 10, "depth": 10, "widen": 1}, (2, 3, 32, 32), (2, 10)),
    "densenet_bc": ({"num_classes": 10, "depth": 16, "growth_rate": 4}, (2, 3, 32, 32), (2, 10)),
    "digits_cnn": ({"num_classes": 10}, (2, 1, 8, 8), (2, 10)),
    "lenet_speech": ({"num_classes": 30, "channels": 4, "hidden": 16}, (2, 1, 40, 30), (2, 30)),
    "vgg11_speech": ({"num_classes": 30, "width_divisor": 16}, (2, 1, 40, 36), (2, 30)),
    "mlp": ({"num_classes": 3, "in_features": 4}, (2, 4), (2, 3)),
    "gan_mlp": ({"in_features": 2, "out_features": 1, "hidden": 8}, (5, 2), (5, 1)),
}
