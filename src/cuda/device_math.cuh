// Device helpers shared by the kernel families: loads and stores through float for both storage types, the
// scalar rules of activations (as src/cpu/naive.cpp writes them), type dispatch and launch sizes.
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "cuda/kernels.h"

namespace eastrt::cuda {

__device__ __forceinline__ float load(const float* p, int64_t i) { return p[i]; }
__device__ __forceinline__ float load(const __half* p, int64_t i) { return __half2float(p[i]); }
__device__ __forceinline__ void store(float* p, int64_t i, float v) { p[i] = v; }
__device__ __forceinline__ void store(__half* p, int64_t i, float v) { p[i] = __float2half_rn(v); }

// Packs of V consecutive values moved by one load or store of V · sizeof(T) bytes (2 to 16), each value
// converted through float as load/store do. The address must be aligned to the pack's size.
template <int Bytes>
struct PackWord;
template <>
struct PackWord<2> {
  using type = unsigned short;
};
template <>
struct PackWord<4> {
  using type = unsigned int;
};
template <>
struct PackWord<8> {
  using type = uint2;
};
template <>
struct PackWord<16> {
  using type = uint4;
};

// The V values of type T that `word` holds, as float: load_pack's second half, for kernels that issue
// several packs' loads before converting any.
template <int V, typename T, typename Word>
__device__ __forceinline__ void unpack(const Word& word, float (&v)[V]) {
  static_assert(sizeof(Word) == V * sizeof(T));
  T e[V];
  memcpy(e, &word, sizeof word);
#pragma unroll
  for (int i = 0; i < V; ++i) v[i] = load(e, i);
}

template <int V, typename T>
__device__ __forceinline__ void load_pack(const T* p, float (&v)[V]) {
  using Word = typename PackWord<V * sizeof(T)>::type;
  const Word word = *reinterpret_cast<const Word*>(p);  // one load of the whole pack
  unpack<V, T>(word, v);
}

template <int V, typename T>
__device__ __forceinline__ void store_pack(T* p, const float (&v)[V]) {
  using Word = typename PackWord<V * sizeof(T)>::type;
  T e[V];
#pragma unroll
  for (int i = 0; i < V; ++i) store(e, i, v[i]);
  Word word;
  memcpy(&word, e, sizeof word);
  *reinterpret_cast<Word*>(p) = word;
}

// The widest pack both types move in at most 16 bytes: 4 floats, 8 halves, 4 for a half↔float conversion.
template <typename In, typename Out>
constexpr int pack_width() {
  return 16 / (sizeof(In) > sizeof(Out) ? sizeof(In) : sizeof(Out));
}

inline bool aligned_to(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

// The same formulas as cpu::naive::apply_activation, in float.
__device__ __forceinline__ float activate(const Activation& a, float x) {
  switch (a.type) {
    case 0: return x > 0.0f ? x : 0.0f;
    case 1: return 1.0f / (1.0f + expf(-x));
    case 2: return tanhf(x);
    case 3: return fminf(fmaxf(x, a.alpha), a.beta);
    case 4: return fmaxf(0.0f, fminf(1.0f, a.alpha * x + a.beta));
    case 5: return x * fmaxf(0.0f, fminf(1.0f, x / 6.0f + 0.5f));
    case 6: return x >= 0.0f ? x : a.alpha * x;
    default: return x;
  }
}

// A kernel epilogue's activation known at compile time where it is none or ReLU (EAST's), any other through
// activate(): its switch over every kind, inlined at each of a tensor-core thread's 64 outputs, made the
// 3x3 kernel 16 000 instructions long (3 900 with ReLU alone), far past the instruction cache.
constexpr int kNoActivation = -1, kReluActivation = 0, kAnyActivation = 1000;

template <int kActivation>
__device__ __forceinline__ float epilogue_activation(const Activation& act, float v) {
  if constexpr (kActivation == kNoActivation) return v;
  else if constexpr (kActivation == kReluActivation) return fmaxf(v, 0.0f);
  else return activate(act, v);
}

// Calls f(std::integral_constant<int, K>{}) with K the epilogue_activation kind that serves `act`.
template <typename F>
void dispatch_epilogue_activation(const Activation& act, F&& f) {
  if (act.type == -1) f(std::integral_constant<int, kNoActivation>{});
  else if (act.type == 0) f(std::integral_constant<int, kReluActivation>{});
  else f(std::integral_constant<int, kAnyActivation>{});
}

// Calls f(In{}, Out{}) with the storage types named by the two DTypes.
template <typename F>
void dispatch_types(DType in, DType out, F&& f) {
  if (in == DType::kF32) {
    if (out == DType::kF32) f(float{}, float{});
    else f(float{}, __half{});
  } else {
    if (out == DType::kF32) f(__half{}, float{});
    else f(__half{}, __half{});
  }
}

template <typename F>
void dispatch_type(DType type, F&& f) {
  if (type == DType::kF32) f(float{});
  else f(__half{});
}

// Calls f(int{}) where a kernel's offsets fit in an int with room for its grid stride (`largest`: the
// element count of its largest tensor), else f(int64_t{}): in the grid-stride kernels a thread's handful of
// 64-bit divisions and remainders cost more than its pack's loads and stores.
template <typename F>
void dispatch_index(int64_t largest, F&& f) {
  if (largest <= std::numeric_limits<int>::max() / 2) f(int{});
  else f(int64_t{});
}

constexpr int kThreads = 256;

// Grid-stride kernels: enough blocks to fill the GPU several times over, never more than the work needs.
inline unsigned grid_for(int64_t count) {
  const int64_t blocks = (count + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > 65536 ? 65536 : blocks));
}

}  // namespace eastrt::cuda
