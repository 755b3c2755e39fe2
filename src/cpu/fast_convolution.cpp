// The fast NHWC convolution (see fast.h): sgemm on the input itself for 1×1 stride-1 layers, im2col in
// bounded tiles plus sgemm otherwise, and a direct loop for depthwise layers.
#include <cblas.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>

#include "cpu/fast.h"
#include "eastrt/error.h"

namespace eastrt::cpu::fast {
namespace {

// Tiles of output rows, one GEMM each, are spread over the pool; each thread gathers its tile's im2col
// into its own scratch and runs a single-threaded sgemm on it, so the gathered rows are still in that
// core's cache when the GEMM reads them and no GEMM waits for the others. A tile aims at kTileBytes of
// im2col (about a core's L2), but has at least kMinTileRows rows (OpenBLAS repacks the weights for every
// GEMM, a cost amortised over the rows) and the scratch of all threads together stays below kScratchBytes.
constexpr int64_t kTileBytes = 1 << 20;
constexpr int64_t kMinTileRows = 256;
constexpr int64_t kScratchBytes = 64 << 20;

int64_t tile_rows(int64_t row_len, int64_t rows_total, int threads) {
  const int64_t row_bytes = row_len * static_cast<int64_t>(sizeof(float));
  int64_t rows = std::max(kMinTileRows, kTileBytes / row_bytes);
  rows = std::max<int64_t>(1, std::min(rows, kScratchBytes / threads / row_bytes));
  // Then evened out: a whole number of equal tiles per thread, so that a layer with few rows (the last
  // ResNet stage has 840 at 672×1280) does not leave a thread idle while another finishes a tile.
  int64_t tiles = (rows_total + rows - 1) / rows;
  tiles = (tiles + threads - 1) / threads * threads;
  return std::max<int64_t>(1, (rows_total + tiles - 1) / tiles);
}

// GEMMs run inside the pool's threads, one per thread at a time, so OpenBLAS must not start threads of
// its own: the threads busy stay the pool's size.
void use_single_threaded_blas() {
  if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
}

// C[m,n] = A[m,k] · B[n,k]^T (+ beta·C): A is the input or its im2col, B the weights as [K, R·S·C].
void gemm_abt(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
              float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(n),
              static_cast<int>(k), 1.0f, a, static_cast<int>(lda), b, static_cast<int>(ldb), beta, c,
              static_cast<int>(ldc));
}

// The calling thread's im2col scratch, kept between layers (pool threads live as long as the process).
float* thread_scratch(int64_t count) {
  thread_local std::vector<float> scratch;
  if (static_cast<int64_t>(scratch.size()) < count) {
    scratch.clear();
    scratch.shrink_to_fit();
    scratch.resize(static_cast<size_t>(count));
  }
  return scratch.data();
}

enum class Packing { kKrsc, kRsc };  // [K][R][S][C/groups] for the GEMM; [R][S][C] for depthwise

// Weights repacked from KCRS to the order im2col reads the input in (channels innermost), cached per
// weight tensor so that repeated runs do not repack: the cache holds a weak reference to the weights and
// repacks when they are gone, so a freed tensor whose address is reused is never mistaken for it.
std::shared_ptr<const std::vector<float>> packed_weights(const Weights& weights, Packing packing) {
  struct Entry {
    std::weak_ptr<const HostTensor> source;
    std::shared_ptr<const std::vector<float>> packed;
  };
  static std::mutex mutex;
  static std::map<std::pair<const HostTensor*, Packing>, Entry> cache;
  std::lock_guard<std::mutex> lock(mutex);
  const auto key = std::make_pair(weights.get(), packing);
  auto found = cache.find(key);
  if (found != cache.end() && found->second.source.lock() == weights) return found->second.packed;
  for (auto it = cache.begin(); it != cache.end();) it = it->second.source.expired() ? cache.erase(it) : std::next(it);

  const Shape& s = weights->shape;  // [K, Cg, R, S]
  const int64_t K = s[0], Cg = s[1], RS = s[2] * s[3];
  auto packed = std::make_shared<std::vector<float>>(weights->data.size());
  for (int64_t k = 0; k < K; ++k)
    for (int64_t c = 0; c < Cg; ++c)
      for (int64_t rs = 0; rs < RS; ++rs) {
        const float w = weights->data[(k * Cg + c) * RS + rs];
        if (packing == Packing::kKrsc)
          (*packed)[(k * RS + rs) * Cg + c] = w;
        else
          (*packed)[rs * K + k] = w;  // depthwise: Cg == 1 and k is the channel
      }
  cache[key] = Entry{weights, packed};
  return packed;
}

struct Geometry {
  int64_t N, H, W, C, K, G, Cg, Kg, R, S, OH, OW;
  int sh, sw, dh, dw, top, left;
};

Geometry check_geometry(const HostTensor& input, const ConvolutionParams& p, const HostTensor& output) {
  EASTRT_CHECK(input.shape.size() == 4, "convolution: expected a 4-D N,H,W,C input, got ", to_string(input.shape));
  Geometry g{};
  g.N = input.shape[0], g.H = input.shape[1], g.W = input.shape[2], g.C = input.shape[3];
  g.K = p.out_channels, g.G = p.groups, g.R = p.kernel[0], g.S = p.kernel[1];
  EASTRT_CHECK(g.G >= 1 && g.K >= 1 && g.C % g.G == 0 && g.K % g.G == 0, "convolution: ", g.C, " input and ",
               g.K, " output channels are not divisible into ", g.G, " groups");
  g.Cg = g.C / g.G, g.Kg = g.K / g.G;
  EASTRT_CHECK(p.kernel_weights && p.kernel_weights->shape == (Shape{g.K, g.Cg, g.R, g.S}),
               "convolution: expected KCRS weights ", to_string(Shape{g.K, g.Cg, g.R, g.S}));
  EASTRT_CHECK(!p.bias || p.bias->size() == g.K, "convolution: expected ", g.K, " biases");
  g.sh = p.stride[0], g.sw = p.stride[1], g.dh = p.dilation[0], g.dw = p.dilation[1];
  g.top = p.padding.top, g.left = p.padding.left;
  EASTRT_CHECK(g.sh >= 1 && g.sw >= 1 && g.dh >= 1 && g.dw >= 1, "convolution: stride and dilation must be >= 1");
  g.OH = (g.H + p.padding.top + p.padding.bottom - (g.R - 1) * g.dh - 1) / g.sh + 1;
  g.OW = (g.W + p.padding.left + p.padding.right - (g.S - 1) * g.dw - 1) / g.sw + 1;
  EASTRT_CHECK(output.shape == (Shape{g.N, g.OH, g.OW, g.K}) && output.size() == volume(output.shape),
               "convolution: output is ", to_string(output.shape), ", expected ",
               to_string(Shape{g.N, g.OH, g.OW, g.K}));
  return g;
}

// Gathers, for output pixels [p0, p0 + rows) and group g, the R·S·Cg input values each one sees, in
// (r, s, c) order; cells in the padding are zero.
void im2col(const Geometry& g, const float* in, int64_t group, int64_t p0, int64_t rows, float* col) {
  const int64_t row_len = g.R * g.S * g.Cg;
  for (int64_t i = 0; i < rows; ++i) {
      const int64_t pix = p0 + i;
      const int64_t n = pix / (g.OH * g.OW), oh = pix / g.OW % g.OH, ow = pix % g.OW;
      float* dst = col + i * row_len;
      const int64_t iw0 = ow * g.sw - g.left;
      // The columns s of kernel row r that land inside the input: [s_begin, s_end).
      int64_t s_begin = 0, s_end = g.S;
      while (s_begin < g.S && iw0 + s_begin * g.dw < 0) ++s_begin;
      while (s_end > s_begin && iw0 + (s_end - 1) * g.dw >= g.W) --s_end;
      for (int64_t r = 0; r < g.R; ++r, dst += g.S * g.Cg) {
        const int64_t ih = oh * g.sh - g.top + r * g.dh;
        if (ih < 0 || ih >= g.H || s_begin == s_end) {
          std::memset(dst, 0, g.S * g.Cg * sizeof(float));
          continue;
        }
        const float* src_row = in + ((n * g.H + ih) * g.W) * g.C + group * g.Cg;
        std::memset(dst, 0, s_begin * g.Cg * sizeof(float));
        if (g.dw == 1 && g.G == 1) {
          // Consecutive kernel columns read consecutive input pixels: one copy for the whole run.
          std::memcpy(dst + s_begin * g.Cg, src_row + (iw0 + s_begin) * g.C, (s_end - s_begin) * g.C * sizeof(float));
        } else {
          for (int64_t s = s_begin; s < s_end; ++s)
            std::memcpy(dst + s * g.Cg, src_row + (iw0 + s * g.dw) * g.C, g.Cg * sizeof(float));
        }
      std::memset(dst + s_end * g.Cg, 0, (g.S - s_end) * g.Cg * sizeof(float));
    }
  }
}

// Depthwise (groups == C == K): each output channel is one input channel; a direct loop vectorised over
// the channels, which NHWC keeps contiguous. The epilogue is applied to each output pixel as it is done.
void depthwise(const Geometry& g, const ConvolutionParams& p, const float* in, const HostTensor* residual,
               float* out, ThreadPool& pool) {
  const auto packed = packed_weights(p.kernel_weights, Packing::kRsc);
  const float* w = packed->data();
  const float* bias = p.bias ? p.bias->data.data() : nullptr;
  const float* res = residual ? residual->data.data() : nullptr;
  const int64_t C = g.C;
  pool.parallel_for(g.N * g.OH, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t n = row / g.OH, oh = row % g.OH;
      for (int64_t ow = 0; ow < g.OW; ++ow) {
        const int64_t pixel = row * g.OW + ow;
        float* acc = out + pixel * C;
        for (int64_t c = 0; c < C; ++c) acc[c] = (bias ? bias[c] : 0.0f) + (res ? res[pixel * C + c] : 0.0f);
        for (int64_t r = 0; r < g.R; ++r) {
          const int64_t ih = oh * g.sh - g.top + r * g.dh;
          if (ih < 0 || ih >= g.H) continue;
          for (int64_t s = 0; s < g.S; ++s) {
            const int64_t iw = ow * g.sw - g.left + s * g.dw;
            if (iw < 0 || iw >= g.W) continue;
            const float* x = in + ((n * g.H + ih) * g.W + iw) * C;
            const float* wk = w + (r * g.S + s) * C;
            for (int64_t c = 0; c < C; ++c) acc[c] += x[c] * wk[c];
          }
        }
        if (p.activation) activate(*p.activation, acc, acc, C);
      }
    }
  }, 1);
}

}  // namespace

void convolution(const HostTensor& input, const ConvolutionParams& p, HostTensor& output, ThreadPool& pool,
                 const HostTensor* residual) {
  const Geometry g = check_geometry(input, p, output);
  EASTRT_CHECK(!residual || residual->shape == output.shape, "convolution: the residual input is ",
               residual ? to_string(residual->shape) : "", ", the output ", to_string(output.shape));
  const float* in = input.data.data();
  float* out = output.data.data();
  const int64_t M = g.N * g.OH * g.OW;
  if (M == 0) return;
  if (g.G == g.C && g.K == g.C && g.G > 1) {
    depthwise(g, p, in, residual, out, pool);
    return;
  }

  // 1×1, stride 1, unpadded: the NHWC input already is the [N·H·W, C] matrix (a group is a column block
  // of it, lda = C), so the layer is one GEMM, split into row tiles. Otherwise each tile is gathered first.
  const bool pointwise = g.R == 1 && g.S == 1 && g.sh == 1 && g.sw == 1 && g.OH == g.H && g.OW == g.W;
  const int64_t row_len = g.R * g.S * g.Cg;
  std::shared_ptr<const std::vector<float>> packed;
  if (!pointwise) packed = packed_weights(p.kernel_weights, Packing::kKrsc);
  const float* weights = pointwise ? p.kernel_weights->data.data() : packed->data();  // [K, row_len] either way
  const float* bias = p.bias ? p.bias->data.data() : nullptr;
  const float* res = residual ? residual->data.data() : nullptr;
  // Epilogue, first half: the output rows start as bias + residual and the GEMM accumulates onto them
  // (beta = 1). OpenBLAS clears C before accumulating when beta = 0 anyway, so this costs no extra pass.
  // Second half: the activation, on the tile while it is still in cache.
  const float beta = bias || res ? 1.0f : 0.0f;
  const int64_t rows = tile_rows(row_len, M, pool.size());
  const int64_t tiles = (M + rows - 1) / rows;

  use_single_threaded_blas();
  pool.parallel_for(tiles, [&](int64_t t0, int64_t t1) {
    float* col = pointwise ? nullptr : thread_scratch(rows * row_len);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t p0 = t * rows, n = std::min(rows, M - p0);
      float* out_tile = out + p0 * g.K;
      if (res && bias) {
        for (int64_t r = 0; r < n; ++r)
          for (int64_t k = 0; k < g.K; ++k) out_tile[r * g.K + k] = res[(p0 + r) * g.K + k] + bias[k];
      } else if (res) {
        std::memcpy(out_tile, res + p0 * g.K, n * g.K * sizeof(float));
      } else if (bias) {
        for (int64_t r = 0; r < n; ++r) std::memcpy(out_tile + r * g.K, bias, g.K * sizeof(float));
      }
      for (int64_t grp = 0; grp < g.G; ++grp) {
        const float* a = in + p0 * g.C + grp * g.Cg;
        int64_t lda = g.C;
        if (!pointwise) {
          im2col(g, in, grp, p0, n, col);
          a = col, lda = row_len;
        }
        gemm_abt(n, g.Kg, row_len, a, lda, weights + grp * g.Kg * row_len, row_len, beta, out_tile + grp * g.Kg, g.K);
      }
      if (p.activation) activate(*p.activation, out_tile, out_tile, n * g.K);
    }
  }, 1);
}

}  // namespace eastrt::cpu::fast
