// Float atomics for the emulation of grad.cu (each CUDA thread is a host thread, so adds must be atomic).
#pragma once
#include <atomic>

inline float atomicAdd(float *p, float v) { return std::atomic_ref<float>(*p).fetch_add(v); }
