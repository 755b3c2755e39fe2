// Where the sm_90a code (Hopper's wgmma kernels, built for that target alone: CMakeLists.txt) runs, for the
// host code that chooses it and the launchers that refuse other GPUs (no CUDA headers).
#pragma once

namespace eastrt::cuda {

// Compute capability 9.0 alone: sm_90a code has no PTX to run elsewhere, not even on later GPUs.
inline bool runs_sm90a(int major, int minor) { return major == 9 && minor == 0; }

}  // namespace eastrt::cuda
