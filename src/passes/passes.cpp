// The pass manager: the default rewrites in the order in which each enables the next.
#include "passes/passes.h"

#include "eastrt/error.h"

namespace eastrt::passes {

std::vector<PassReport> run_default_passes(Network& network) {
  struct Pass {
    const char* name;
    int (*run)(Network&);
  };
  // BatchNorm first (a Scale between a convolution and the Add would block the residual fusion), then the
  // residual (which takes the block's ReLU with it), then the remaining activations.
  static constexpr Pass kPasses[] = {{"fold_batch_norm", fold_batch_norm},
                                     {"fuse_residual", fuse_residual},
                                     {"fuse_activation", fuse_activation}};
  std::vector<PassReport> reports;
  for (const Pass& pass : kPasses) {
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
