// kNN probe helpers. The distance matrix itself is D = -2 Q R^T from cuBLAS GEMM;
// these kernels add the squared norms, clamp at 0 and select the k smallest per row.

// out[r] = sum_j x[r, j]^2, one thread per row (sequential, like the CPU reference).
extern "C" __global__ void row_sq_norms(
    const float* __restrict__ x,
    float* __restrict__ out,
    unsigned int rows,
    unsigned int dim)
{
    const unsigned int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    const float* row = x + (unsigned long long)r * dim;
    float s = 0.0f;
    for (unsigned int j = 0; j < dim; ++j) s += row[j] * row[j];
    out[r] = s;
}

// d[i, j] = max(qn[i] + rn[j] + d[i, j], 0), where d holds -2 q_i . r_j on entry.
extern "C" __global__ void finish_sq_distances(
    float* __restrict__ d,
    const float* __restrict__ qn,
    const float* __restrict__ rn,
    unsigned int nq,
    unsigned int nr)
{
    const unsigned long long total = (unsigned long long)nq * nr;
    const unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned long long t = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; t < total; t += stride) {
        const unsigned int i = (unsigned int)(t / nr);
        const unsigned int j = (unsigned int)(t % nr);
        d[t] = fmaxf((qn[i] + rn[j]) + d[t], 0.0f);
    }
}

#define GRAFT_TOPK_BLOCK 256

// Whether (da, ia) comes before (db, ib): smaller distance, ties by lower index.
__device__ __forceinline__ bool graft_before(float da, unsigned int ia, float db, unsigned int ib) {
    return da < db || (da == db && ia < ib);
}

// For each row of d (nq x nr), the k smallest entries in ascending (distance, index)
// order. One block per row; k rounds of a block-wide arg-min over the entries after
// the previous pick. blockDim.x must be a power of two <= GRAFT_TOPK_BLOCK.
extern "C" __global__ void topk_smallest(
    const float* __restrict__ d,
    unsigned int nq,
    unsigned int nr,
    unsigned int k,
    unsigned int* __restrict__ out_idx,
    float* __restrict__ out_dist)
{
    __shared__ float sd[GRAFT_TOPK_BLOCK];
    __shared__ unsigned int si[GRAFT_TOPK_BLOCK];
    const unsigned int row = blockIdx.x;
    if (row >= nq) return;
    const unsigned int tid = threadIdx.x;
    const float* x = d + (unsigned long long)row * nr;
    const float inf = __int_as_float(0x7f800000);

    float last_d = 0.0f;
    unsigned int last_i = 0;
    for (unsigned int r = 0; r < k; ++r) {
        float best_d = inf;
        unsigned int best_i = 0xffffffffu;
        for (unsigned int j = tid; j < nr; j += blockDim.x) {
            const float dj = x[j];
            if (r > 0 && !graft_before(last_d, last_i, dj, j)) continue;
            if (graft_before(dj, j, best_d, best_i)) {
                best_d = dj;
                best_i = j;
            }
        }
        sd[tid] = best_d;
        si[tid] = best_i;
        __syncthreads();
        for (unsigned int s = blockDim.x / 2; s > 0; s >>= 1) {
            if (tid < s && graft_before(sd[tid + s], si[tid + s], sd[tid], si[tid])) {
                sd[tid] = sd[tid + s];
                si[tid] = si[tid + s];
            }
            __syncthreads();
        }
        last_d = sd[0];
        last_i = si[0];
        if (tid == 0) {
            out_idx[(unsigned long long)row * k + r] = last_i;
            out_dist[(unsigned long long)row * k + r] = last_d;
        }
        __syncthreads();
    }
}
