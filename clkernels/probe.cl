/* The smallest program that leans on what the real kernels do: a float16 vector (the widest OpenCL
 * type; the GEMM's panels use it on 512-bit CPUs), a built-in math function and mad.
 * minitorch_cl/compiler_check.py builds and runs it in a child process to learn whether a device's
 * OpenCL C compiler works before choosing that device as the default. PoCL 3.0's LLVM 14, for one,
 * refuses every build on some CPUs newer than it knows ("unknown target CPU 'generic'") and on
 * others builds, then aborts the process at the first launch of a float16 kernel. */
__kernel void probe(__global float *x, const int x_off)
{
    __global float *p = x + x_off + 16 * get_global_id(0);
    float16 v = vload16(0, p);
    vstore16(mad(v, v, exp(-v)), 0, p);
}
