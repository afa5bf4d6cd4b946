"""torchvision.models' weights API: a Weights entry (url, transforms, meta) in a per-model WeightsEnum,
and the registry behind get_model / list_models. Pretrained files come through minitorch_cl.hub."""
import enum
from dataclasses import dataclass, field
from typing import Callable

from ... import hub

_MODELS = {}


@dataclass(eq=False)
class Weights:
    url: str
    transforms: Callable
    meta: dict = field(default_factory=dict)


class WeightsEnum(enum.Enum):
    """A model's pretrained weights, named as torchvision names them (ResNet18_Weights.IMAGENET1K_V1)."""

    @classmethod
    def verify(cls, obj):
        """None, a member, or its name (also "ResNet18_Weights.IMAGENET1K_V1") -> a member or None."""
        if obj is None or isinstance(obj, cls):
            return obj
        if isinstance(obj, str):
            name = obj.replace(cls.__name__ + ".", "")
            if name in cls.__members__:
                return cls.__members__[name]
            raise ValueError(f"{obj!r} is not a {cls.__name__}; choose from {list(cls.__members__)}")
        raise TypeError(f"weights must be None, a {cls.__name__} or its name, not {type(obj).__name__}")

    def get_state_dict(self, *args, **kwargs):
        return hub.load_state_dict_from_url(self.url, *args, **kwargs)

    def __repr__(self):
        return f"{type(self).__name__}.{self.name}"

    @property
    def url(self):
        return self.value.url

    @property
    def transforms(self):
        return self.value.transforms

    @property
    def meta(self):
        return self.value.meta


def override_num_classes(kwargs, weights):
    """Pretrained weights fix num_classes to their categories; a conflicting request is an error."""
    n = len(weights.meta["categories"])
    if kwargs.setdefault("num_classes", n) != n:
        raise ValueError(f"{weights!r} has {n} classes; num_classes={kwargs['num_classes']} conflicts with it")


def load_weights(model, weights, progress):
    if weights is not None:
        model.load_state_dict(weights.get_state_dict(progress=progress, check_hash=True))
    return model


def register_model(weights):
    """Decorates a builder: list_models()/get_model() find it by its name, get_model_weights() its enum."""
    def wrap(fn):
        fn.weights_enum = weights
        _MODELS[fn.__name__] = fn
        return fn
    return wrap


def list_models():
    return sorted(_MODELS)


def get_model_builder(name):
    try:
        return _MODELS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; minitorch_cl.vision.models has {list_models()}") from None


def get_model(name, **config):
    return get_model_builder(name)(**config)


def get_model_weights(name):
    """The WeightsEnum class of a model, by name or builder."""
    fn = get_model_builder(name) if isinstance(name, str) else name
    return fn.weights_enum

