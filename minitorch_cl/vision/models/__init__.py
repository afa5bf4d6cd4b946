"""torchvision.models: the classic networks with torchvision's constructors, module structure and
state_dict names, so a checkpoint written by torchvision loads as it is."""
from ._api import Weights, WeightsEnum, get_model, get_model_builder, get_model_weights, list_models

__all__ = ["Weights", "WeightsEnum", "get_model", "get_model_builder", "get_model_weights", "list_models"]
# each model file appends: from .resnet import *  and extends __all__
from .mobilenetv2 import *  # noqa: F401,F403
from .mobilenetv3 import *  # noqa: F401,F403
from .efficientnet import *  # noqa: F401,F403
from . import mobilenetv2, mobilenetv3, efficientnet
__all__ += mobilenetv2.__all__ + mobilenetv3.__all__ + efficientnet.__all__
