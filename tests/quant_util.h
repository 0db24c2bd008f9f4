// Shared by the quantization tests: a fixture model lowered to the IR and calibrated on its input.
#pragma once
#include <string>

#include "cli_util.h"
#include "graph/ir.h"
#include "graph/model.h"
#include "io/npy.h"
#include "quant/config.h"
#include "quant/quantizer.h"

namespace y7::test {

struct CalibratedFixture {
  graph::IrGraph g;          // the float IR of the fixture model
  quant::QuantConfig cfg;    // calibrated on x (one batch)
  quant::QuantOptions opt;   // both conversions on when hswish
  Tensor x;                  // the fixture's input.npy, [2,3,128,192]
};

inline CalibratedFixture calibrated_fixture(const std::string& arch, bool hswish) {
  const std::string dir = fixtures() + "/" + arch;
  auto m = graph::load_model(dir + "/model.pt");
  CalibratedFixture f;
  f.x = io::read_npy(dir + "/input.npy");
  f.g = graph::lower(*m, f.x.sizes());
  f.opt.convert_silu_to_hswish = f.opt.convert_sigmoid_to_hsigmoid = hswish;
  quant::Calibrator cal(f.g, f.opt);
  cal.add_batch(f.x);
  f.cfg = cal.finish(int(f.x.size(2)));
  return f;
}

}  // namespace y7::test
