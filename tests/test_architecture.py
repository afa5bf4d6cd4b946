"""The package's structure, checked: imports flow one way, no imports hide in function bodies,
every kernel buffer argument carries its offset, one launcher, and the device profile's clamps."""
import ast
import re
from pathlib import Path

import numpy as np
import pytest

import minitorch_cl as mt
from minitorch_cl import device_profile, dtypes, launch, layout

PKG = Path(mt.__file__).parent
KERNELS = PKG.parent / "clkernels" if (PKG.parent / "clkernels").is_dir() else PKG / "clkernels"

# Lower layers never import higher ones (docs/ARCHITECTURE.md's diagram).
LAYERS = [
    {"shared_constants", "dtypes", "grad_mode", "device_profile", "user_cache"},
    {"layout", "kernels", "tuned_profile"},
    {"compiler_check"},
    {"device"},
    {"launch"},
    {"tensor"},
    {"backend", "autograd", "gemm", "random", "profiler"},
]  # everything else (ops/, nn/, tuner, ...) sits above them
LAZY_OK = {"cli.py", "bench"}  # the command line imports its subcommands lazily


def _modules():
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG)
        yield rel, ast.parse(path.read_text())


def _package_imports(rel, node):
    """Module names (relative to the package) that an import node pulls in."""
    if isinstance(node, ast.ImportFrom) and node.level:
        base = list(rel.parent.parts)[: len(rel.parent.parts) - (node.level - 1)]
        target = base + (node.module.split(".") if node.module else [])
        if node.module is None:
            return {".".join(base + [a.name]) for a in node.names}
        return {".".join(target)}
    return set()


def test_no_package_import_inside_a_function():
    offenders = []
    for rel, tree in _modules():
        if rel.parts[0] in LAZY_OK or rel.name in LAZY_OK:
            continue
        for fn in ast.walk(tree):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(fn):
                    if _package_imports(rel, node):
                        offenders.append(f"{rel}:{node.lineno}")
    assert not offenders, f"imports of the package inside function bodies: {offenders}"


def test_imports_flow_down_the_layers():
    rank = {name: i for i, layer in enumerate(LAYERS) for name in layer}
    wrong = []
    for rel, tree in _modules():
        name = ".".join(rel.with_suffix("").parts)
        if name not in rank:
            continue
        for node in tree.body:
            for dep in _package_imports(rel, node):
                top = dep.split(".")[0]
                if rank.get(top, len(LAYERS)) > rank[name]:
                    wrong.append(f"{name} imports {dep}")
    assert not wrong, wrong


def test_every_kernel_buffer_argument_has_its_offset():
    missing = []
    for path in sorted(KERNELS.glob("*.cl")):
        src = path.read_text()
        for m in re.finditer(r"__kernel\b[^{]*?void\s+(\w+)\s*\(([^)]*)\)", src, re.S):
            params = [p.strip() for p in m.group(2).split(",")]
            for i, p in enumerate(params):
                if "__global" in p:
                    name = re.findall(r"\w+", p)[-1]
                    nxt = params[i + 1] if i + 1 < len(params) else ""
                    if not re.fullmatch(rf"(const\s+)?int\s+{name}_off", nxt):
                        missing.append(f"{path.name}:{m.group(1)}({name})")
    assert not missing, f"buffer arguments without a following `int <name>_off`: {missing}"


def test_every_launch_goes_through_the_launcher():
    direct = [f"{rel}" for rel, tree in _modules() if rel.name != "launch.py"
              for node in ast.walk(tree)
              if isinstance(node, ast.Attribute) and node.attr in ("enqueue_nd_range_kernel", "set_args")]
    assert not direct, f"kernels enqueued outside launch.py: {direct}"


def test_tensor_methods_are_visible(dev):
    x = mt.ones(3, device=dev)
    for name in ("exp", "sum", "view", "to", "maximum", "__add__", "__iadd__" if hasattr(x, "__iadd__") else "add"):
        assert name in dir(x)


def test_launch_names_the_kernel_on_a_wrong_call(dev):
    x = mt.ones(4, device=dev)
    with pytest.raises(launch.KernelArgumentError, match="optim.cl:sgd_step"):
        launch.launch(dev, "optim.cl", "sgd_step", (4,), 4, 0.1, x)
    with pytest.raises(launch.KernelArgumentError, match="argument 7 is a buffer"):
        launch.launch(dev, "optim.cl", "sgd_step", (4,), 4, 0.1, 0.0, 0.0, 0.0, 0, 1, 3.0, x, x)


def test_launch_types_struct_arguments_and_holds_later_launches_to_them(dev):
    defines = dict(OP="OP_NEG", **dtypes.cl_defines(dev, T=dtypes.float32, TA=dtypes.float32, TO=dtypes.float32))
    x, out = mt.tensor(np.arange(5, dtype=np.float32), device=dev), mt.zeros(5, device=dev)
    shape, sa, so = layout.layout_struct((5,), [(1,), (1,)])
    launch.launch(dev, "elementwise.cl", "map1", (5,), 5, shape, sa, so, 0.0, 0.0, x, out, defines=defines)
    np.testing.assert_array_equal(out.numpy(), -np.arange(5))
    plan = dev._launch_plans[("elementwise.cl", "map1", tuple(sorted(defines.items())))]
    assert plan.struct_dtypes == {1: layout.SHAPE_DTYPE, 2: layout.STRIDES_DTYPE, 3: layout.STRIDES_DTYPE}
    with pytest.raises(launch.KernelArgumentError, match="elementwise.cl:map1.*argument 2 is a struct"):
        launch.launch(dev, "elementwise.cl", "map1", (5,), 5, shape, shape, so, 0.0, 0.0, x, out, defines=defines)


def test_launch_reads_views_through_their_offset(dev):
    base = mt.tensor(np.arange(10, dtype=np.float32), device=dev)
    p = mt.zeros(10, device=dev)
    # SGD without momentum on views at offsets: p[2:6] -= 1.0 * base[5:9]
    launch.launch(dev, "optim.cl", "sgd_step", (4,), 4, 1.0, 0.0, 0.0, 0.0, 0, 1, base[5:9], p[2:6], p[2:6])
    np.testing.assert_array_equal(p.numpy(), [0, 0, -5, -6, -7, -8, 0, 0, 0, 0])


def test_profile_is_clamped_to_the_device_limits():
    small = device_profile.for_device("GPU", max_work_group_size=64, local_mem_size=4096,
                                      mem_base_addr_align=128, extensions="cl_khr_fp64")
    assert small.map_local <= 64 and small.reduce_wg <= 64 and small.layernorm_wg <= 64
    assert small.gemm_tiles["TM"] == 32 and small.fp64 and not small.fp16
    cpu = device_profile.for_device("CPU", max_work_group_size=4096, local_mem_size=1 << 20,
                                    mem_base_addr_align=64, extensions="")
    assert not cpu.gemm_packed  # packed float8 loads need 256-bit aligned buffers
    avx2, avx512 = (device_profile.for_device("CPU", max_work_group_size=4096, local_mem_size=1 << 20,
                                              mem_base_addr_align=1024, extensions="", native_vector_width_float=w)
                    for w in (8, 16))
    assert avx2.gemm_cpu_block["LANES"] == 8 and avx512.gemm_cpu_block["LANES"] == 16
    assert avx2.attention_lanes == 8 and avx512.attention_lanes == 16
    gpu = device_profile.for_device("GPU", max_work_group_size=256, local_mem_size=1 << 16, mem_base_addr_align=1024,
                                    extensions="", native_vector_width_float=16)
    assert gpu.gemm_cpu_block["LANES"] == 8 and gpu.attention_lanes == 8
    with pytest.raises(KeyError, match="no_such_entry"):
        cpu.update(no_such_entry=1)


def test_device_owns_its_profile(dev):
    assert dev.profile is dev.profile
    assert dev.profile.map_local <= dev.max_work_group_size
