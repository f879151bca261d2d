// Fused Adam / AdamW update with PyTorch semantics, one thread per element.
//
//   AdamW (decoupled):  p *= decay                 (decay = 1 - lr * weight_decay)
//   Adam (L2):          g += weight_decay * p
//   m = beta1 * m + (1 - beta1) * g
//   v = beta2 * v + (1 - beta2) * g * g
//   p -= step_size * m / (sqrt(v) / bc2_sqrt + eps)
// with step_size = lr / (1 - beta1^t) and bc2_sqrt = sqrt(1 - beta2^t), both
// computed on the host in f64.

extern "C" __global__ void adam_step(
    float* __restrict__ params,
    const float* __restrict__ grads,
    float* __restrict__ m,
    float* __restrict__ v,
    unsigned long long n,
    float beta1,
    float beta2,
    float eps,
    float weight_decay,
    int decoupled,
    float decay,
    float step_size,
    float bc2_sqrt)
{
    const unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        float p = params[i];
        float g = grads[i];
        if (weight_decay != 0.0f) {
            if (decoupled) {
                p = p * decay;
            } else {
                g = g + weight_decay * p;
            }
        }
        const float mi = beta1 * m[i] + (1.0f - beta1) * g;
        const float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        const float denom = sqrtf(vi) / bc2_sqrt + eps;
        params[i] = p - step_size * (mi / denom);
    }
}
