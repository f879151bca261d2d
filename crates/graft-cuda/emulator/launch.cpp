// Host emulation of CUDA kernel launches for graft's kernels (test-only).
//
// `graft_emu_launch(name, grid, block, params)` runs kernel `name` over `grid` blocks of
// `block` threads. `params` is what cuLaunchKernel takes: one pointer per kernel
// argument, pointing at the argument's value. Blocks run one after another. Kernels that
// synchronise a block run each block on `block` OS threads meeting at a real barrier;
// the others run their threads in turn on the calling thread.
//
// Returns 0 on success, -1 for an unknown kernel, -2 when a kernel listed as
// barrier-free called __syncthreads, -3 for an invalid launch shape.

#include "cuda_host.h"

#include <atomic>
#include <barrier>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "../kernels/adam.cu"
#include "../kernels/knn.cu"
#include "../kernels/linear_probe.cu"
#include "../kernels/normalize.cu"
#include "../kernels/softmax_xent.cu"

thread_local dim3 threadIdx;
thread_local dim3 blockIdx;
thread_local dim3 blockDim;
thread_local dim3 gridDim;

namespace {

std::barrier<>* g_block_barrier = nullptr;
std::atomic<bool> g_unexpected_sync{false};
std::mutex g_launch;

template <class... A, size_t... I>
void call_with(void (*kernel)(A...), void** params, std::index_sequence<I...>) {
    kernel(*static_cast<std::remove_cv_t<A>*>(params[I])...);
}

// Calls `kernel` with its arguments read from cuLaunchKernel-style `params`.
template <class... A>
void call(void (*kernel)(A...), void** params) {
    call_with(kernel, params, std::index_sequence_for<A...>{});
}

struct Entry {
    const char* name;
    void (*invoke)(void**);
    bool block_sync;
};

#define GRAFT_ENTRY(kernel, sync) {#kernel, [](void** p) { call(kernel, p); }, sync}

const Entry KERNELS[] = {
    GRAFT_ENTRY(normalize_images, false),
    GRAFT_ENTRY(softmax_xent, true),
    GRAFT_ENTRY(adam_step, false),
    GRAFT_ENTRY(row_sq_norms, false),
    GRAFT_ENTRY(finish_sq_distances, false),
    GRAFT_ENTRY(topk_smallest, true),
    GRAFT_ENTRY(gather_rows, false),
    GRAFT_ENTRY(add_bias, false),
    GRAFT_ENTRY(column_sums, false),
};

void set_thread(unsigned grid, unsigned block, unsigned b, unsigned t) {
    gridDim = dim3{grid, 1, 1};
    blockDim = dim3{block, 1, 1};
    blockIdx = dim3{b, 1, 1};
    threadIdx = dim3{t, 1, 1};
}

}  // namespace

void __syncthreads() {
    if (g_block_barrier != nullptr) {
        g_block_barrier->arrive_and_wait();
    } else {
        g_unexpected_sync = true;
    }
}

extern "C" int graft_emu_kernel_count() { return (int)(sizeof KERNELS / sizeof KERNELS[0]); }

extern "C" const char* graft_emu_kernel_name(int i) {
    return (i >= 0 && i < graft_emu_kernel_count()) ? KERNELS[i].name : nullptr;
}

extern "C" int graft_emu_launch(const char* name, unsigned grid, unsigned block, void** params) {
    const Entry* entry = nullptr;
    for (const Entry& e : KERNELS) {
        if (strcmp(e.name, name) == 0) entry = &e;
    }
    if (entry == nullptr) return -1;
    // CUDA's limits: at most 1024 threads per block, 2^31 - 1 blocks in x.
    if (grid == 0 || block == 0 || block > 1024 || grid > 0x7fffffffu) return -3;

    std::lock_guard<std::mutex> lock(g_launch);
    g_unexpected_sync = false;
    if (!entry->block_sync) {
        for (unsigned b = 0; b < grid; ++b) {
            for (unsigned t = 0; t < block; ++t) {
                set_thread(grid, block, b, t);
                entry->invoke(params);
            }
        }
    } else {
        std::barrier<> barrier((std::ptrdiff_t)block);
        g_block_barrier = &barrier;
        std::vector<std::thread> threads;
        threads.reserve(block);
        for (unsigned t = 0; t < block; ++t) {
            threads.emplace_back([=, &barrier] {
                for (unsigned b = 0; b < grid; ++b) {
                    set_thread(grid, block, b, t);
                    entry->invoke(params);
                    // The block is done when all its threads are: only then may the next
                    // block reuse the shared arrays.
                    barrier.arrive_and_wait();
                }
            });
        }
        for (std::thread& th : threads) th.join();
        g_block_barrier = nullptr;
    }
    return g_unexpected_sync ? -2 : 0;
}
