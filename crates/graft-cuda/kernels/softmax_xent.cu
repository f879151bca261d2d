// Fused row softmax + cross-entropy loss + gradient, one block per row.
//
//   row_loss[r] = log(sum_c exp(x[r,c] - m)) + m - x[r, label[r]]   (m = max_c x[r,c])
//   grad[r,c]   = (softmax(x[r])[c] - (c == label[r])) * inv_batch
//
// blockDim.x must be a power of two no larger than GRAFT_SOFTMAX_BLOCK.
// A label >= classes yields a NaN loss (the host validates labels first).

#define GRAFT_SOFTMAX_BLOCK 256

__device__ __forceinline__ float graft_block_max(float v, float* shared) {
    const unsigned int tid = threadIdx.x;
    shared[tid] = v;
    __syncthreads();
    for (unsigned int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (tid < s) shared[tid] = fmaxf(shared[tid], shared[tid + s]);
        __syncthreads();
    }
    const float r = shared[0];
    __syncthreads();
    return r;
}

__device__ __forceinline__ float graft_block_sum(float v, float* shared) {
    const unsigned int tid = threadIdx.x;
    shared[tid] = v;
    __syncthreads();
    for (unsigned int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (tid < s) shared[tid] = shared[tid] + shared[tid + s];
        __syncthreads();
    }
    const float r = shared[0];
    __syncthreads();
    return r;
}

extern "C" __global__ void softmax_xent(
    const float* __restrict__ logits,
    const unsigned int* __restrict__ labels,
    float* __restrict__ grad,
    float* __restrict__ row_loss,
    unsigned int rows,
    unsigned int classes,
    float inv_batch)
{
    __shared__ float shared[GRAFT_SOFTMAX_BLOCK];
    const unsigned int row = blockIdx.x;
    if (row >= rows) return;
    const float* x = logits + (unsigned long long)row * classes;
    float* g = grad + (unsigned long long)row * classes;
    const unsigned int label = labels[row];

    float m = __int_as_float(0xff800000); // -infinity
    for (unsigned int c = threadIdx.x; c < classes; c += blockDim.x) m = fmaxf(m, x[c]);
    m = graft_block_max(m, shared);

    float s = 0.0f;
    for (unsigned int c = threadIdx.x; c < classes; c += blockDim.x) s += expf(x[c] - m);
    s = graft_block_sum(s, shared);

    for (unsigned int c = threadIdx.x; c < classes; c += blockDim.x) {
        const float p = expf(x[c] - m) / s;
        const float target = (c == label) ? 1.0f : 0.0f;
        g[c] = (p - target) * inv_batch;
    }
    if (threadIdx.x == 0) {
        row_loss[row] = (label < classes) ? (logf(s) + m - x[label]) : __int_as_float(0x7fc00000);
    }
}
