// The few CUDA C names graft's kernels use, defined for the host, so that g++ compiles
// kernels/*.cu unchanged and `launch.cpp` runs them with CUDA's execution model: a grid
// of blocks, each a set of threads with `threadIdx` / `blockIdx` of their own, sharing
// `__shared__` arrays and meeting at `__syncthreads()`.
//
// Test-only (src/gpu/emulator.rs builds it); nothing here ships in graft.
#pragma once

#include <math.h>
#include <stdint.h>
#include <string.h>

struct dim3 {
    unsigned int x = 1, y = 1, z = 1;
};

// Per emulated thread (each block's threads run on their own OS threads, see launch.cpp).
extern thread_local dim3 threadIdx;
extern thread_local dim3 blockIdx;
extern thread_local dim3 blockDim;
extern thread_local dim3 gridDim;

// A barrier of the block's threads; a kernel launched without block threads (see
// launch.cpp) that calls it makes the launch fail instead of silently racing.
void __syncthreads();

// The bit pattern `bits` (low 32 bits) read as a float, like CUDA's intrinsic.
inline float __int_as_float(long long bits) {
    const uint32_t u = (uint32_t)bits;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

#define __global__
#define __device__
#define __forceinline__ inline
// One launch runs at a time and its blocks one after another, so a function-static
// array is exactly one block's shared memory.
#define __shared__ static
