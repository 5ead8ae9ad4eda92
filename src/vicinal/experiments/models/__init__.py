"""The lab's model zoo: ``build_model(name, num_classes, ...)`` over a registry of named builders.

>>> from vicinal.experiments.models import build_model, count_parameters
>>> model = build_model("preact_resnet18", num_classes=10, width=16, seed=0)
>>> count_parameters(model)
700762

Names (``sorted(MODELS)``): densenet_bc, digits_cnn, gan_mlp, lenet_speech, mlp, preact_resnet18, resnet101,
resnet50, resnext101_32x4d, resnext101_64x4d, vgg11_speech, wrn. Importing this package registers them all;
torchvision is imported only when an ImageNet model is built.
"""

from . import cifar, imagenet, small  # noqa: F401  (registers the builders)
from .registry import MODELS, Normalize, build_model, check_model_name, count_parameters, register_model

__all__ = ["MODELS", "Normalize", "build_model", "check_model_name", "count_parameters", "register_model"]
