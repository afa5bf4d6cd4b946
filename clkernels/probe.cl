/* The smallest program: minitorch_cl/device.py builds it to learn whether a device's OpenCL C
 * compiler works at all before choosing that device as the default (PoCL 3.0's LLVM 14, for one,
 * refuses every build on a CPU newer than it knows: "unknown target CPU 'generic'"). */
__kernel void probe(__global float *x, const int x_off)
{
    x[x_off + get_global_id(0)] += 1.0f;
}
