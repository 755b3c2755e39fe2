// The convolution family: cuDNN 9 (legacy API, NHWC) descriptors, algorithm search, the fused and split
// tactics, and the explicit padding kernel for the asymmetric part of a padding (see conv_cudnn.h).
#include "cuda/conv_cudnn.h"
#include "cuda/device_math.cuh"

namespace eastrt::cuda {
namespace {

// One thread per output pixel and pack of V output channels: EAST's conv1 input in FP16 is 8 channels, one
// 16-byte store per pixel.
template <int V, typename In, typename Out>
__global__ void pad_kernel(const In* x, Out* y, int n, int h, int w, int c, int top, int left, int oh, int ow,
                           int oc) {
  const int packs = oc / V;
  const int64_t count = int64_t(n) * oh * ow * packs;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) {
    const int first = static_cast<int>(i % packs) * V;
    const int64_t pixel = i / packs;
    const int col = static_cast<int>(pixel % ow) - left;
    const int64_t rest = pixel / ow;
    const int row = static_cast<int>(rest % oh) - top;
    const int64_t image = rest / oh;
    const bool inside = row >= 0 && row < h && col >= 0 && col < w;
    const int64_t source = ((image * h + row) * w + col) * c;
    float v[V];
#pragma unroll
    for (int j = 0; j < V; ++j) v[j] = inside && first + j < c ? load(x, source + first + j) : 0.0f;
    store_pack<V>(y + pixel * oc + first, v);
  }
}

}  // namespace

void launch_pad(const void* x, DType xt, void* y, DType yt, int n, int h, int w, int c, int top, int left, int oh,
                int ow, int oc, cudaStream_t stream) {
  const int64_t count = int64_t(n) * oh * ow * oc;
  if (count == 0) return;
  dispatch_types(xt, yt, [&](auto in, auto out) {
    using In = decltype(in);
    using Out = decltype(out);
    constexpr int V = 16 / sizeof(Out);
    if (oc % V == 0 && aligned_to(y, 16))
      pad_kernel<V><<<grid_for(count / V), kThreads, 0, stream>>>(static_cast<const In*>(x), static_cast<Out*>(y), n, h,
                                                                  w, c, top, left, oh, ow, oc);
    else
      pad_kernel<1><<<grid_for(count), kThreads, 0, stream>>>(static_cast<const In*>(x), static_cast<Out*>(y), n, h, w,
                                                              c, top, left, oh, ow, oc);
  });
  EASTRT_LAUNCHED("pad_kernel");
}

CudnnConvolution::CudnnConvolution(const ConvGeometry& g, DType type, int math) : geometry_(g), type_(type) {
  const cudnnDataType_t dt = cudnn_data_type(type);
  EASTRT_CUDNN(cudnnCreateTensorDescriptor(&x_desc_));
  EASTRT_CUDNN(cudnnCreateTensorDescriptor(&y_desc_));
  EASTRT_CUDNN(cudnnCreateTensorDescriptor(&bias_desc_));
  EASTRT_CUDNN(cudnnCreateFilterDescriptor(&w_desc_));
  EASTRT_CUDNN(cudnnCreateConvolutionDescriptor(&conv_desc_));
  EASTRT_CUDNN(cudnnCreateActivationDescriptor(&relu_desc_));
  EASTRT_CUDNN(cudnnCreateActivationDescriptor(&identity_desc_));
  EASTRT_CUDNN(cudnnSetTensor4dDescriptor(x_desc_, CUDNN_TENSOR_NHWC, dt, g.n, g.c, g.h, g.w));
  EASTRT_CUDNN(cudnnSetTensor4dDescriptor(y_desc_, CUDNN_TENSOR_NHWC, dt, g.n, g.k, g.oh, g.ow));
  EASTRT_CUDNN(cudnnSetTensor4dDescriptor(bias_desc_, CUDNN_TENSOR_NHWC, dt, 1, g.k, 1, 1));
  EASTRT_CUDNN(cudnnSetFilter4dDescriptor(w_desc_, dt, CUDNN_TENSOR_NHWC, g.k, g.c / g.groups, g.r, g.s));
  // Accumulation in float32 for every storage type (FP16: cuDNN's "pseudo half" configuration).
  EASTRT_CUDNN(cudnnSetConvolution2dDescriptor(conv_desc_, g.pad_h, g.pad_w, g.stride_h, g.stride_w, g.dilation_h,
                                               g.dilation_w, CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  EASTRT_CUDNN(cudnnSetConvolutionGroupCount(conv_desc_, g.groups));
  EASTRT_CUDNN(cudnnSetConvolutionMathType(conv_desc_, static_cast<cudnnMathType_t>(math)));
  // NaN propagates through the ReLU so that a poisoned (unwritten) input cannot hide.
  EASTRT_CUDNN(cudnnSetActivationDescriptor(relu_desc_, CUDNN_ACTIVATION_RELU, CUDNN_PROPAGATE_NAN, 0.0));
  EASTRT_CUDNN(cudnnSetActivationDescriptor(identity_desc_, CUDNN_ACTIVATION_IDENTITY, CUDNN_PROPAGATE_NAN, 0.0));
  int n = 0, k = 0, oh = 0, ow = 0;
  EASTRT_CUDNN(cudnnGetConvolution2dForwardOutputDim(conv_desc_, x_desc_, w_desc_, &n, &k, &oh, &ow));
  EASTRT_CHECK(n == g.n && k == g.k && oh == g.oh && ow == g.ow, "cuDNN computes a ", n, "x", oh, "x", ow, "x", k,
               " output for a convolution the network says is ", g.n, "x", g.oh, "x", g.ow, "x", g.k);
}

CudnnConvolution::~CudnnConvolution() {
  // Destruction never throws; a failure here would only leak a descriptor.
  cudnnDestroyActivationDescriptor(identity_desc_);
  cudnnDestroyActivationDescriptor(relu_desc_);
  cudnnDestroyConvolutionDescriptor(conv_desc_);
  cudnnDestroyFilterDescriptor(w_desc_);
  cudnnDestroyTensorDescriptor(bias_desc_);
  cudnnDestroyTensorDescriptor(y_desc_);
  cudnnDestroyTensorDescriptor(x_desc_);
}

void CudnnConvolution::set_math(int math) {
  EASTRT_CUDNN(cudnnSetConvolutionMathType(conv_desc_, static_cast<cudnnMathType_t>(math)));
}

std::vector<ConvAlgorithm> CudnnConvolution::find(cudnnHandle_t handle, const void* x, const void* w, void* y,
                                                  void* workspace, size_t workspace_limit) {
  cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
  int returned = 0;
  EASTRT_CUDNN(cudnnFindConvolutionForwardAlgorithmEx(handle, x_desc_, x, w_desc_, w, conv_desc_, y_desc_, y,
                                                      CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &returned, perf, workspace,
                                                      workspace_limit));
  std::vector<ConvAlgorithm> found;
  for (int i = 0; i < returned; ++i)
    if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= workspace_limit && perf[i].time >= 0)
      found.push_back({static_cast<int>(perf[i].algo), perf[i].time, perf[i].memory, static_cast<int>(perf[i].mathType),
                       perf[i].determinism == CUDNN_DETERMINISTIC});
  return found;
}

std::vector<ConvAlgorithm> CudnnConvolution::heuristic(cudnnHandle_t handle, size_t workspace_limit) {
  cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
  int returned = 0;
  EASTRT_CUDNN(cudnnGetConvolutionForwardAlgorithm_v7(handle, x_desc_, w_desc_, conv_desc_, y_desc_,
                                                      CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &returned, perf));
  std::vector<ConvAlgorithm> found;
  for (int i = 0; i < returned; ++i)
    if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= workspace_limit)
      found.push_back({static_cast<int>(perf[i].algo), 0.0f, perf[i].memory, static_cast<int>(perf[i].mathType),
                       perf[i].determinism == CUDNN_DETERMINISTIC});
  return found;
}

size_t CudnnConvolution::workspace_size(cudnnHandle_t handle, int algo) {
  size_t bytes = 0;
  EASTRT_CUDNN(cudnnGetConvolutionForwardWorkspaceSize(handle, x_desc_, w_desc_, conv_desc_, y_desc_,
                                                       static_cast<cudnnConvolutionFwdAlgo_t>(algo), &bytes));
  return bytes;
}

cudnnStatus_t CudnnConvolution::run(cudnnHandle_t handle, bool fused, int algo, const ConvOperands& o, Activation act,
                                    cudaStream_t stream) {
  const float one = 1.0f, zero = 0.0f;
  const int64_t count = int64_t(geometry_.n) * geometry_.oh * geometry_.ow * geometry_.k;
  const auto cudnn_algo = static_cast<cudnnConvolutionFwdAlgo_t>(algo);
  if (fused) {
    // y = act(1·conv(x) + alpha2·z + bias); without a residual alpha2 is 0 and z is y itself (cuDNN
    // allows z to alias y).
    const float alpha2 = o.residual ? 1.0f : 0.0f;
    const bool relu_inside = act.type == 0;
    const cudnnStatus_t status = cudnnConvolutionBiasActivationForward(
        handle, &one, x_desc_, o.x, w_desc_, o.w, conv_desc_, cudnn_algo, o.workspace, o.workspace_bytes, &alpha2,
        y_desc_, o.residual ? o.residual : o.y, bias_desc_, o.bias, relu_inside ? relu_desc_ : identity_desc_, y_desc_,
        o.y);
    if (status != CUDNN_STATUS_SUCCESS) return status;
    if (!relu_inside && act.type >= 0) launch_activation(o.y, type_, o.y, type_, count, act, stream);
    return status;
  }
  const cudnnStatus_t status = cudnnConvolutionForward(handle, &one, x_desc_, o.x, w_desc_, o.w, conv_desc_, cudnn_algo,
                                                       o.workspace, o.workspace_bytes, &zero, y_desc_, o.y);
  if (status != CUDNN_STATUS_SUCCESS) return status;
  if (o.bias || o.residual || act.type >= 0)
    launch_conv_epilogue(o.y, type_, count, geometry_.k, o.bias, o.residual, act, stream);
  return status;
}

}  // namespace eastrt::cuda
