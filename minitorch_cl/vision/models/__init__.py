"""torchvision.models: the classic networks with torchvision's constructors, module structure and
state_dict names, so a checkpoint written by torchvision loads as it is."""
from ._api import Weights, WeightsEnum, get_model, get_model_builder, get_model_weights, list_models

__all__ = ["Weights", "WeightsEnum", "get_model", "get_model_builder", "get_model_weights", "list_models"]
# each model file appends: from .resnet import *  and extends __all__
from .resnet import *  # noqa: F401,F403
from .resnet import __all__ as _names
__all__ += _names
from .vision_transformer import *  # noqa: F401,F403
from .vision_transformer import __all__ as _names
__all__ += _names
from .vgg import *  # noqa: F401,F403
from .vgg import __all__ as _names
__all__ += _names
from .alexnet import *  # noqa: F401,F403
from .alexnet import __all__ as _names
__all__ += _names
from .squeezenet import *  # noqa: F401,F403
from .squeezenet import __all__ as _names
__all__ += _names
from .mobilenetv2 import *  # noqa: F401,F403
from .mobilenetv2 import __all__ as _names
__all__ += _names
from .mobilenetv3 import *  # noqa: F401,F403
from .mobilenetv3 import __all__ as _names
__all__ += _names
from .efficientnet import *  # noqa: F401,F403
from .efficientnet import __all__ as _names
__all__ += _names
