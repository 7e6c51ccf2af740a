"""Model registry: ``create_model(ModelConfig(arch=...))``. Importing this package registers every
architecture module listed here."""

from agegender.models import lite, paper, reference  # noqa: F401  (register paper, lite, lite-dense, alexnet, vgg16, levi)
from agegender.models.registry import count_parameters, create_model, list_models, register

__all__ = ["count_parameters", "create_model", "list_models", "register"]
