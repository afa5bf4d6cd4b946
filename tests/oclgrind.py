"""Oclgrind, the OpenCL simulator that checks every memory access: where its ICD library is, the
environment that selects it with its checks on, and the error reports in what it wrote to stderr."""
import os
import re
import shutil

CHECKS = {"OCLGRIND_DATA_RACES": "1", "OCLGRIND_CHECK_API": "1"}
# pyopencl asks every device for CL_DEVICE_COMPUTE_CAPABILITY_MAJOR_NV (0x4000) when it builds a
# program or makes a kernel, to spot NVIDIA's; Oclgrind rightly calls that an invalid parameter.
# That one report is pyopencl's, not ours, and is the only one let through.
_PYOPENCL_NV_QUERY = re.compile(r"Oclgrind - OpenCL runtime error detected\n\tFunction: clGetDeviceInfo\n"
                                r"\tError:    CL_INVALID_VALUE\n\tFor argument 'param_name'\n")
_OURS = re.compile(r"^(== .*|compiling kernels for .*|)$")  # kernel_workload's headers, the compile notice


def icd_library():
    """liboclgrind-rt-icd.so of the installed Oclgrind (Debian's `oclgrind` package), or None."""
    candidates = [os.environ.get("OCLGRIND_ICD_LIBRARY", "")]
    binary = shutil.which("oclgrind")
    if binary:
        prefix = os.path.dirname(os.path.dirname(os.path.realpath(binary)))
        candidates += [os.path.join(prefix, "lib", "oclgrind", "liboclgrind-rt-icd.so"),
                       os.path.join(prefix, "lib", "liboclgrind-rt-icd.so")]
    return next((c for c in candidates if c and os.path.isfile(c)), None)


def environment(icd_path):
    """os.environ plus what runs minitorch_cl on Oclgrind alone, with its checks on; icd_path is an
    .icd file naming icd_library() (OCL_ICD_VENDORS set to one file makes it the only platform)."""
    return {**os.environ, **CHECKS, "OCL_ICD_VENDORS": str(icd_path), "MINITORCH_CL_DEVICE": "oclgrind"}


def reports(stderr):
    """Oclgrind's reports (invalid accesses, data races, API errors, ...) in a process's stderr: every
    line that is not pyopencl's NVIDIA query or our own."""
    lines = _PYOPENCL_NV_QUERY.sub("", stderr.replace("\r\n", "\n")).splitlines()
    return "\n".join(line for line in lines if not _OURS.match(line)).strip()
