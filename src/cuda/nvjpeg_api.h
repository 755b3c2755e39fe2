// The part of nvJPEG's C API that the GPU JPEG decoder calls, declared here from NVIDIA's nvJPEG documentation
// (the library is loaded at run time with dlopen, never linked, and its header is not needed to build):
// status codes, the backend and output-format enums, the output image descriptor and the function types.
#pragma once
#include <cstddef>

namespace eastrt::nvjpeg {

enum Status : int {
  kSuccess = 0,
  kNotInitialized = 1,
  kInvalidParameter = 2,
  kBadJpeg = 3,
  kJpegNotSupported = 4,
  kAllocatorFailure = 5,
  kExecutionFailed = 6,
  kArchMismatch = 7,
  kInternalError = 8,
  kImplementationNotSupported = 9,
  kIncompleteBitstream = 10,
};

enum Backend : int { kBackendDefault = 0, kBackendHybrid = 1, kBackendGpuHybrid = 2, kBackendHardware = 3 };

// Interleaved RGB in channel[0] (the only format used here).
enum OutputFormat : int { kOutputRgbInterleaved = 5 };

// nvjpegCreateEx flags: the default, and linear interpolation for chroma upsampling (libjpeg's "fancy"
// upsampling is a triangle filter; without it, nvJPEG replicates chroma samples). An older library that does
// not know the flag refuses it; the decoder then creates the handle without it.
inline constexpr unsigned kFlagsDefault = 0;
inline constexpr unsigned kFlagUpsamplingWithInterpolation = 1u << 5;

inline constexpr int kMaxComponents = 4;

// nvjpegImage_t. For interleaved output only channel[0] and pitch[0] are read (pitch is size_t in every
// release since CUDA 11; where it was 32-bit, the low half of pitch[0] is at the same address).
struct Image {
  unsigned char* channel[kMaxComponents];
  size_t pitch[kMaxComponents];
};

struct HandleSt;
struct JpegStateSt;
struct JpegStreamSt;
using Handle = HandleSt*;
using JpegState = JpegStateSt*;
using JpegStream = JpegStreamSt*;
using CudaStream = void*;  // cudaStream_t

// Allocator arguments are always null here (nvJPEG's defaults: cudaMalloc and cudaHostAlloc).
using CreateEx = int (*)(int backend, void* device_allocator, void* pinned_allocator, unsigned flags, Handle* handle);
using Destroy = int (*)(Handle handle);
using JpegStateCreate = int (*)(Handle handle, JpegState* state);
using JpegStateDestroy = int (*)(JpegState state);
using DecodeBatchedInitialize = int (*)(Handle handle, JpegState state, int batch_size, int max_cpu_threads,
                                        int output_format);
using DecodeBatched = int (*)(Handle handle, JpegState state, const unsigned char* const* data, const size_t* lengths,
                              Image* destinations, CudaStream stream);
using JpegStreamCreate = int (*)(Handle handle, JpegStream* stream);
using JpegStreamDestroy = int (*)(JpegStream stream);
using JpegStreamParseHeader = int (*)(Handle handle, const unsigned char* data, size_t length, JpegStream stream);
using JpegStreamParse = int (*)(Handle handle, const unsigned char* data, size_t length, int save_metadata,
                                int save_stream, JpegStream stream);
using JpegStreamGetFrameDimensions = int (*)(JpegStream stream, unsigned* width, unsigned* height);
using JpegStreamGetComponentsNum = int (*)(JpegStream stream, unsigned* components);
// *is_supported is 0 when the handle's backend can decode the parsed stream in a batch.
using DecodeBatchedSupported = int (*)(Handle handle, JpegStream stream, int* is_supported);
using GetHardwareDecoderInfo = int (*)(Handle handle, unsigned* engines, unsigned* cores_per_engine);
using GetProperty = int (*)(int type, int* value);  // type: 0 major, 1 minor, 2 patch level

inline const char* status_name(int status) {
  switch (status) {
    case kSuccess: return "NVJPEG_STATUS_SUCCESS";
    case kNotInitialized: return "NVJPEG_STATUS_NOT_INITIALIZED";
    case kInvalidParameter: return "NVJPEG_STATUS_INVALID_PARAMETER";
    case kBadJpeg: return "NVJPEG_STATUS_BAD_JPEG";
    case kJpegNotSupported: return "NVJPEG_STATUS_JPEG_NOT_SUPPORTED";
    case kAllocatorFailure: return "NVJPEG_STATUS_ALLOCATOR_FAILURE";
    case kExecutionFailed: return "NVJPEG_STATUS_EXECUTION_FAILED";
    case kArchMismatch: return "NVJPEG_STATUS_ARCH_MISMATCH";
    case kInternalError: return "NVJPEG_STATUS_INTERNAL_ERROR";
    case kImplementationNotSupported: return "NVJPEG_STATUS_IMPLEMENTATION_NOT_SUPPORTED";
    case kIncompleteBitstream: return "NVJPEG_STATUS_INCOMPLETE_BITSTREAM";
    default: return "an unknown nvJPEG status";
  }
}

}  // namespace eastrt::nvjpeg
