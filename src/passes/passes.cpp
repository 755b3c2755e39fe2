// The pass manager: the default rewrites in the order in which each enables the next.
#include "passes/passes.h"

#include "eastrt/error.h"

namespace eastrt::passes {

std::vector<PassReport> run_default_passes(Network& network, const PassOptions& options) {
  struct Pass {
    const char* name;
    int (*run)(Network&);
  };
  // BatchNorm first (a Scale between a convolution and the Add would block the residual fusion), then the
  // residual (which takes the block's ReLU with it), then the remaining activations.
  // The upsampling moves last, past a convolution that has its activation already.
  std::vector<Pass> chosen = {{"fold_batch_norm", fold_batch_norm},
                              {"fuse_residual", fuse_residual},
                              {"fuse_activation", fuse_activation}};
  if (options.upsample_after_convolution) chosen.push_back({"upsample_after_convolution", upsample_after_convolution});
  // After fuse_activation: the heads' activations are then inside their convolutions.
  if (options.merge_concatenated_heads) chosen.push_back({"merge_concatenated_heads", merge_concatenated_heads});
  std::vector<PassReport> reports;
  for (const Pass& pass : chosen) {
    PassReport report;
    report.pass = pass.name;
    try {
      report.rewrites = pass.run(network);
      network.validate();
      network.infer_shapes();
    } catch (const Error& e) {
      throw_error("pass ", pass.name, " left an invalid network: ", e.what());
    }
    report.layers_after = network.layers().size();
    reports.push_back(report);
  }
  return reports;
}

}  // namespace eastrt::passes
