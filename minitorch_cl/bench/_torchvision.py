"""torchvision beside PyTorch's CPU build, for `bench models` and the models' reference tests.

The registry's torchvision wheel is a CUDA build: its compiled operators (nms, roi_align) cannot load
beside torch's CPU build, and importing torchvision then fails while registering their fake kernels.
The models are pure Python and need none of those operators, so the registration module is skipped."""
import sys
import types


def import_torchvision():
    """torchvision; ImportError when it (or torch) is not installed."""
    try:
        import torchvision
    except RuntimeError:
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
        import torchvision
    return torchvision


def copy_weights(torch_model, our_model):
    """Our model takes the torch model's state_dict as it is (names and shapes must match torchvision's)."""
    state = {k: v.detach().numpy() for k, v in torch_model.state_dict().items()}
    theirs, ours = set(state), set(our_model.state_dict())
    if theirs != ours:
        raise AssertionError(f"state_dict names differ: only torchvision {sorted(theirs - ours)[:8]}, "
                             f"only ours {sorted(ours - theirs)[:8]}")
    our_model.load_state_dict(state)
