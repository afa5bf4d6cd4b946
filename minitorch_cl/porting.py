"""The import lines that take a PyTorch program to minitorch_cl, and a function that swaps them.

`minitorch-cl port program.py > program_cl.py` prints the program with its imports swapped; every
other line stays as written (docs/PORTING.md)."""
import re

# PyTorch module -> minitorch_cl module, longest first so torch.nn.functional wins over torch.nn
MODULES = [
    ("torch.nn.functional", "minitorch_cl.nn.functional"),
    ("torch.nn.parallel", "minitorch_cl.nn.parallel"),
    ("torch.nn.utils", "minitorch_cl.nn.utils"),
    ("torch.nn", "minitorch_cl.nn"),
    ("torch.optim.lr_scheduler", "minitorch_cl.optim.lr_scheduler"),
    ("torch.optim", "minitorch_cl.optim"),
    ("torch.utils.data", "minitorch_cl.utils.data"),
    ("torch.distributed", "minitorch_cl.distributed"),
    ("torch.cuda", "minitorch_cl.cuda"),
    ("torchvision.datasets", "minitorch_cl.vision.datasets"),
    ("torchvision.transforms", "minitorch_cl.vision.transforms"),
    ("torchvision.models", "minitorch_cl.vision.models"),
    ("torchvision", "minitorch_cl.vision"),
    ("torch", "minitorch_cl"),
]

_IMPORT = re.compile(r"^(\s*)(import|from)\s+([\w.]+)(.*)$")


def swap_module(name):
    """The minitorch_cl module for a PyTorch one (None for a module that is not PyTorch's)."""
    for torch_name, ours in MODULES:
        if name == torch_name or name.startswith(torch_name + "."):
            return ours + name[len(torch_name):]
    return None


def swap_line(line):
    """One import line with its PyTorch module swapped; `import torch` keeps the name torch."""
    m = _IMPORT.match(line)
    if not m:
        return line
    indent, kind, module, rest = m.groups()
    ours = swap_module(module)
    if ours is None:
        return line
    if kind == "import" and not rest.strip().startswith("as") and module == "torch":
        return f"{indent}import {ours} as torch{rest}"
    if kind == "import" and not rest.strip().startswith("as"):
        raise ValueError(f"`{line.strip()}`: write `import {module} as NAME` so the swapped module keeps a name")
    return f"{indent}{kind} {ours}{rest}"


def swap_imports(source):
    """A PyTorch program's source with every PyTorch import line swapped for minitorch_cl's."""
    return "".join(swap_line(line[:-1] if line.endswith("\n") else line) + ("\n" if line.endswith("\n") else "")
                   for line in source.splitlines(keepends=True))
