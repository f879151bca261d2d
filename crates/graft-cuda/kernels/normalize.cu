// u8 images (NCHW) -> normalised f32 (NCHW): out = (p / 255 - mean[c]) / std[c],
// with optional seeded random crop-with-padding and horizontal flip.
//
// The randomness is a counter-based hash of (seed, sample index), so the CPU
// reference (src/cpu/normalize.rs) reproduces it exactly:
//   h       = mix64(seed + 0x9E3779B97F4A7C15 * (first_index + sample + 1))   (wrapping)
//   span    = 2 * pad + 1
//   off_y   = (h & 0xFFFF) % span
//   off_x   = ((h >> 16) & 0xFFFF) % span
//   flipped = flip && ((h >> 32) & 1)
// Output pixel (y, x) reads source pixel (y + off_y - pad, cx + off_x - pad) with
// cx = flipped ? width - 1 - x : x; source pixels outside the image read as 0.

typedef unsigned long long graft_u64;

__device__ __forceinline__ graft_u64 graft_mix64(graft_u64 z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

extern "C" __global__ void normalize_images(
    const unsigned char* __restrict__ src,
    float* __restrict__ dst,
    const float* __restrict__ mean,
    const float* __restrict__ stdv,
    unsigned int n,
    unsigned int channels,
    unsigned int height,
    unsigned int width,
    unsigned int pad,
    int flip,
    int augment,
    graft_u64 seed,
    graft_u64 first_index)
{
    const graft_u64 total = (graft_u64)n * channels * height * width;
    const graft_u64 stride = (graft_u64)gridDim.x * blockDim.x;
    for (graft_u64 i = (graft_u64)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        const unsigned int x = (unsigned int)(i % width);
        graft_u64 rest = i / width;
        const unsigned int y = (unsigned int)(rest % height);
        rest /= height;
        const unsigned int c = (unsigned int)(rest % channels);
        const graft_u64 sample = rest / channels;

        long long sy = y;
        long long sx = x;
        if (augment) {
            const graft_u64 h = graft_mix64(seed + 0x9E3779B97F4A7C15ULL * (first_index + sample + 1ULL));
            const unsigned int span = 2u * pad + 1u;
            const long long off_y = (long long)((h & 0xFFFFULL) % span);
            const long long off_x = (long long)(((h >> 16) & 0xFFFFULL) % span);
            const int flipped = flip && ((h >> 32) & 1ULL);
            const long long cx = flipped ? (long long)(width - 1u - x) : (long long)x;
            sy = (long long)y + off_y - (long long)pad;
            sx = cx + off_x - (long long)pad;
        }
        float p = 0.0f;
        if (sy >= 0 && sy < (long long)height && sx >= 0 && sx < (long long)width) {
            p = (float)src[((sample * channels + c) * height + (graft_u64)sy) * width + (graft_u64)sx];
        }
        dst[i] = (p / 255.0f - mean[c]) / stdv[c];
    }
}
