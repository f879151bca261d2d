// Helpers for the linear-probe trainer (src/gpu/ops.rs); the matrix products are cuBLAS
// GEMMs and the loss / update are softmax_xent.cu and adam.cu.

// xb[r, :] = x[order[start + r], :], yb[r] = labels[order[start + r]] for r < b.
extern "C" __global__ void gather_rows(
    const float* __restrict__ x,
    const unsigned int* __restrict__ labels,
    const unsigned int* __restrict__ order,
    unsigned int start,
    unsigned int b,
    unsigned int dim,
    float* __restrict__ xb,
    unsigned int* __restrict__ yb)
{
    const unsigned long long total = (unsigned long long)b * dim;
    const unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned long long t = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; t < total; t += stride) {
        const unsigned int r = (unsigned int)(t / dim);
        const unsigned int c = (unsigned int)(t % dim);
        const unsigned int src = order[start + r];
        xb[t] = x[(unsigned long long)src * dim + c];
        if (c == 0) yb[r] = labels[src];
    }
}

// logits[r, c] += bias[c].
extern "C" __global__ void add_bias(
    float* __restrict__ logits,
    const float* __restrict__ bias,
    unsigned int rows,
    unsigned int cols)
{
    const unsigned long long total = (unsigned long long)rows * cols;
    const unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned long long t = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; t < total; t += stride) {
        logits[t] += bias[t % cols];
    }
}

// out[c] = sum_r g[r, c], one thread per column, rows summed in order.
extern "C" __global__ void column_sums(
    const float* __restrict__ g,
    float* __restrict__ out,
    unsigned int rows,
    unsigned int cols)
{
    const unsigned int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= cols) return;
    float s = 0.0f;
    for (unsigned int r = 0; r < rows; ++r) s += g[(unsigned long long)r * cols + c];
    out[c] = s;
}
