// NNDCT-style quantization of the graph IR (see quantizer.h for the NNDCT files each piece mirrors).
#include "quant/quantizer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "kernels/ops.h"
#include "quant/fixpoint.h"

namespace y7::quant {

using graph::IrGraph;
using graph::IrNode;
using graph::IrOp;

// ---------------------------------------------------------------- identity and config checks

std::string graph_identity(const IrGraph& g) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a 64
  auto feed = [&](const std::string& s) {
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
    h = (h ^ 0xffu) * 1099511628211ull;  // separator
  };
  auto shape = [](const Tensor& t) { return t.defined() ? shape_str(t.sizes()) : std::string("-"); };
  for (const auto& n : g.nodes) {
    std::string s = std::string(graph::ir_op_name(n.op)) + "|" + n.name + "|";
    for (int i : n.in) s += std::to_string(i) + ",";
    s += "|" + shape(n.weight) + "|" + shape(n.bias);
    char b[96];
    switch (n.op) {
      case IrOp::Conv: std::snprintf(b, sizeof b, "|%d,%d,%d,%d", n.stride, n.pad, n.dilation, n.groups); break;
      case IrOp::Act: std::snprintf(b, sizeof b, "|%s,%.9g", ops::act_name(n.act), double(n.alpha)); break;
      case IrOp::MaxPool: std::snprintf(b, sizeof b, "|%d,%d,%d", n.k, n.s, n.p); break;
      case IrOp::Upsample: std::snprintf(b, sizeof b, "|%d", n.scale); break;
      case IrOp::Concat: std::snprintf(b, sizeof b, "|%d", n.axis); break;
      default: b[0] = 0; break;
    }
    feed(s + b);
  }
  std::string outs;
  for (int o : g.outputs) outs += std::to_string(o) + ",";
  feed(outs);
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

// ---------------------------------------------------------------- graph rewrite

namespace {

bool is_hard_act(const IrNode& n) {
  return n.op == IrOp::Act && (n.act == ops::Act::Hardswish || n.act == ops::Act::Hardsigmoid);
}

}  // namespace

// Mirrors the nndct_convert_silu_to_hswish / nndct_convert_sigmoid_to_hsigmoid conversions and
// SetNegativeSlope (nndct_shared/optimization/commander.py: the DPU's LeakyReLU slope 26/256).
IrGraph convert_for_dpu(const IrGraph& g, const QuantOptions& o) {
  Y7_CHECK(!g.nodes.empty() && g.nodes[0].op == IrOp::Input, "quant: the graph has no Input node");
  IrGraph q = g;
  q.reset_caches();
  for (auto& n : q.nodes) {
    const std::string where = "node '" + n.name + "' (" + graph::ir_op_name(n.op) + ")";
    switch (n.op) {
      case IrOp::Input: case IrOp::Conv: case IrOp::MaxPool: case IrOp::Upsample: case IrOp::Concat: break;
      case IrOp::Add:
        Y7_CHECK(n.in.size() == 2 && !n.weight.defined(), "quant: ", where,
                 " adds a constant, which the DPU does not run (unfused ImplicitA/BatchNorm?)");
        break;
      case IrOp::Mul: fail("quant: ", where, " is an elementwise multiply, which the DPU does not run");
      case IrOp::ReOrg: fail("quant: ", where, " (space-to-depth) is not supported by the DPU quantizer");
      case IrOp::Act:
        switch (n.act) {
          case ops::Act::SiLU:
            Y7_CHECK(o.convert_silu_to_hswish, "quant: ", where,
                     " is SiLU, which the DPU does not run; pass --nndct_convert_silu_to_hswish");
            n.act = ops::Act::Hardswish;
            break;
          case ops::Act::Sigmoid:
            Y7_CHECK(o.convert_sigmoid_to_hsigmoid, "quant: ", where,
                     " is Sigmoid, which the DPU does not run; pass --nndct_convert_sigmoid_to_hsigmoid");
            n.act = ops::Act::Hardsigmoid;
            break;
          case ops::Act::LeakyReLU: n.alpha = 0.1015625f; break;
          case ops::Act::ReLU: case ops::Act::Hardswish: case ops::Act::Hardsigmoid: break;
          default: fail("quant: ", where, " activation ", ops::act_name(n.act), " is not supported by the DPU");
        }
        break;
    }
  }
  return q;
}

// ---------------------------------------------------------------- plan

int Plan::num_fix() const { return int(std::count(has_fix.begin(), has_fix.end(), true)); }

Plan make_plan(const IrGraph& g) {
  const int N = int(g.nodes.size());
  std::vector<std::vector<int>> users(N);
  std::vector<bool> is_out(N, false);
  for (int i = 0; i < N; ++i)
    for (int p : g.nodes[i].in) {
      Y7_CHECK(p >= 0 && p < i, "quant: node '", g.nodes[i].name, "' has a bad input index");
      users[p].push_back(i);
    }
  for (int o : g.outputs) {
    Y7_CHECK(o >= 0 && o < N, "quant: bad graph output index");
    is_out[o] = true;
  }
  // consumers including the graph outputs' DeQuantStub
  auto n_users = [&](int i) { return users[i].size() + (is_out[i] ? 1 : 0); };
  Plan pl;
  // quant groups (QuantConfigerCommander SoftFuseRelu/SoftFuseLeakyRelu via group_up): an
  // activation joins its parent's group when it is the parent's only consumer
  pl.group_end.resize(N);
  for (int i = 0; i < N; ++i) pl.group_end[i] = i;
  for (int i = 1; i < N; ++i) {
    const IrNode& n = g.nodes[i];
    if (n.op != IrOp::Act || (n.act != ops::Act::LeakyReLU && n.act != ops::Act::ReLU) || n.in.size() != 1) continue;
    const int p = n.in[0];
    if (n_users(p) != 1) continue;
    const int old_end = pl.group_end[p];
    for (int j = 0; j <= i; ++j)
      if (pl.group_end[j] == old_end) pl.group_end[j] = i;
  }
  // quant_output (NndctGraphHolder.quant_output): the group end, or the Concat it only feeds
  // (followed on through chains of such concats)
  auto quant_output = [&](int i) {
    int e = pl.group_end[i];
    for (int guard = 0; guard < N; ++guard) {
      if (is_out[e] || users[e].size() != 1 || g.nodes[users[e][0]].op != IrOp::Concat) break;
      e = pl.group_end[users[e][0]];
    }
    return e;
  };
  auto quantizable = [&](const IrNode& n) {  // NndctGraphHolder.QUANTIZABLE_OPS
    switch (n.op) {
      case IrOp::Input: case IrOp::Conv: case IrOp::MaxPool: case IrOp::Upsample: case IrOp::Concat: case IrOp::Add:
        return true;
      case IrOp::Act: return is_hard_act(n);
      default: return false;
    }
  };
  pl.fix_at.resize(N);
  pl.has_fix.assign(N, false);
  for (int i = 0; i < N; ++i) pl.fix_at[i] = quant_output(i);
  // TorchNndctQstrategy.create_quant_config: the output of every quantizable node's quant_output,
  // and the inputs of every quantizable node but Input/Concat
  for (int i = 0; i < N; ++i) {
    const IrNode& n = g.nodes[i];
    if (!quantizable(n)) continue;
    pl.has_fix[pl.fix_at[i]] = true;
    if (n.op != IrOp::Input && n.op != IrOp::Concat)
      for (int p : n.in) pl.has_fix[pl.fix_at[p]] = true;
  }
  pl.scope.assign(N, kDiffsScope);
  pl.scope[0] = 1;  // the QuantStub input
  pl.dpu_act.assign(N, false);
  for (int i = 0; i < N; ++i) pl.dpu_act[i] = is_hard_act(g.nodes[i]);
  return pl;
}

void check_config_matches(const QuantConfig& c, const IrGraph& g, const QuantOptions& o) {
  const std::string id = graph_identity(g);
  Y7_CHECK(c.graph_hash == id, "quant config was calibrated for another model (graph_md5 ", c.graph_hash,
           ", this model ", id, ")");
  Y7_CHECK(c.convert_silu_to_hswish == o.convert_silu_to_hswish, "quant config was calibrated ",
           c.convert_silu_to_hswish ? "with" : "without", " --nndct_convert_silu_to_hswish; pass the same flags");
  Y7_CHECK(c.convert_sigmoid_to_hsigmoid == o.convert_sigmoid_to_hsigmoid, "quant config was calibrated ",
           c.convert_sigmoid_to_hsigmoid ? "with" : "without",
           " --nndct_convert_sigmoid_to_hsigmoid; pass the same flags");
  Y7_CHECK(c.bit_width == 8, "quant config: bit_width ", c.bit_width, " is not supported");
  IrGraph q = convert_for_dpu(g, o);
  Plan pl = make_plan(q);
  for (size_t i = 0; i < q.nodes.size(); ++i) {
    const IrNode& n = q.nodes[i];
    Y7_CHECK(!pl.has_fix[i] || c.has_output(n.name), "quant config has no fix_point for node '", n.name,
             "' (calibrated for another model?)");
    if (n.op == IrOp::Conv) {
      Y7_CHECK(c.param.count(n.name + ".weight") && c.param.count(n.name + ".bias"), "quant config has no weight/bias fix_point for conv '",
               n.name, "' (calibrated for another model?)");
    }
  }
  Y7_CHECK(int(c.output.size()) == pl.num_fix(), "quant config has ", c.output.size(), " output fix points, the model ",
           pl.num_fix(), " (calibrated for another model?)");
}

int count_cle_pairs(const IrGraph& g) {
  const int N = int(g.nodes.size());
  std::vector<std::vector<int>> users(N);
  std::vector<bool> is_out(N, false);
  for (int i = 0; i < N; ++i)
    for (int p : g.nodes[i].in) users[size_t(p)].push_back(i);
  for (int o : g.outputs) is_out[size_t(o)] = true;
  auto single = [&](int i) { return users[size_t(i)].size() == 1 && !is_out[size_t(i)]; };
  int pairs = 0;
  for (int i = 0; i < N; ++i) {
    if (g.nodes[i].op != IrOp::Conv || !single(i)) continue;
    int j = users[size_t(i)][0];
    while (single(j) && ((g.nodes[j].op == IrOp::Act && g.nodes[j].act == ops::Act::ReLU) || g.nodes[j].op == IrOp::MaxPool))
      j = users[size_t(j)][0];
    if (g.nodes[j].op == IrOp::Conv) ++pairs;
  }
  return pairs;
}

// ---------------------------------------------------------------- fix-point adjustments

// Mirrors QuantizeFixPosChecker.__call__'s forward pass with NNDCT's default options (concat/add/
// pool input alignment off): align_output_to_input for nearest RESIZE, then the
// adjust_relative_and_absolute checks of fix_pos_adjust.py FixPosChecker.
void adjust_fix_points(const IrGraph& g, const Plan& pl, QuantConfig& c) {
  const int N = int(g.nodes.size());
  auto out_of = [&](int i) -> int& {
    auto it = c.output.find(g.nodes[pl.fix_at[i]].name);
    Y7_CHECK(it != c.output.end(), "quant: no fix point for '", g.nodes[pl.fix_at[i]].name, "'");
    return it->second;
  };
  auto param = [&](const std::string& k) -> int& {
    auto it = c.param.find(k);
    Y7_CHECK(it != c.param.end(), "quant: no fix point for '", k, "'");
    return it->second;
  };
  for (int i = 1; i < N; ++i) {
    const IrNode& n = g.nodes[i];
    if (n.op == IrOp::Upsample) {
      // align_output_to_input unless the quant output is a Concat
      const int e = pl.group_end[i];
      const bool to_concat = pl.fix_at[i] != e;
      if (!to_concat) out_of(i) = out_of(n.in[0]);
    } else if (n.op == IrOp::Act && n.act == ops::Act::Hardsigmoid) {
      int& o = out_of(i);  // output_must_larger_than_7
      o = std::max(o, 7);
      for (int p : n.in) out_of(p) = std::max(out_of(p), 0);  // input_must_larger_than_0
    } else if (n.op == IrOp::Act && n.act == ops::Act::Hardswish) {
      for (int p : n.in) out_of(p) = std::max(out_of(p), 0);  // input_must_larger_than_0
      int& o = out_of(i);  // input_output_relative_check_for_hswish
      o = std::min(o, out_of(n.in[0]) + 7);
    } else if (n.op == IrOp::Conv) {  // shift_cut_bias
      const int fi = out_of(n.in[0]);
      int& fo = out_of(i);
      int& fw = param(n.name + ".weight");
      int& fb = param(n.name + ".bias");
      const int shift_cut = fw + fi - fo;
      if (shift_cut < 0) fo = fo + shift_cut;
      else if (shift_cut > 16) fw = fw - shift_cut + 16;
      const int shift_bias = fw + fi - fb;
      const int shift_bias_min = std::min(0, -(24 - (8 + shift_cut)));
      if (shift_bias < shift_bias_min) fb = fb + shift_bias - shift_bias_min;
      else if (shift_bias > 16) fw = fw - shift_bias + 16;
    }
  }
}

// ---------------------------------------------------------------- shared run hook

namespace {

// Quantizes the Conv weights/biases of q in place with the given fix points (std_round).
void quantize_params(IrGraph& q, const std::vector<int>& wfp, const std::vector<int>& bfp) {
  for (size_t i = 0; i < q.nodes.size(); ++i) {
    IrNode& n = q.nodes[i];
    if (n.op != IrOp::Conv) continue;
    n.weight = fake_quant(n.weight, wfp[i], 8, kParamRound);
    n.bias = fake_quant(n.bias, bfp[i], 8, kParamRound);
  }
  q.reset_caches();
}

}  // namespace

// ---------------------------------------------------------------- calibration

Calibrator::Calibrator(const IrGraph& g, const QuantOptions& o) : qg_(convert_for_dpu(g, o)), opt_(o) {
  plan_ = make_plan(qg_);
  identity_ = graph_identity(g);
  const int N = int(qg_.nodes.size());
  wfp_.assign(N, 0), bfp_.assign(N, 0);
  for (int i = 0; i < N; ++i) {
    const IrNode& n = qg_.nodes[i];
    if (n.op != IrOp::Conv) continue;
    try {
      // torchquantizer.calibrate_int for 'param' tensors: diffs, std_round, scope 5, cap 12
      wfp_[i] = std::min(kMaxFixPoint, diffs_fix_pos(n.weight.contiguous(), 8, kDiffsScope, kParamRound));
      bfp_[i] = std::min(kMaxFixPoint, diffs_fix_pos(n.bias.contiguous(), 8, kDiffsScope, kParamRound));
    } catch (const Error& e) {
      fail("quant: conv '", n.name, "' parameters: ", e.what());
    }
  }
  bc_.assign(N, {});
  for (int i = 0; i < N; ++i)
    if (qg_.nodes[i].op == IrOp::Conv) bc_[i].wf = qg_.nodes[i].weight, bc_[i].bf = qg_.nodes[i].bias;
  quantize_params(qg_, wfp_, bfp_);
  history_.assign(N, {});
}

namespace {

// The run() hook shared by calibration and test: DPU activations, then the node's fix neuron, then
// `after` (bias correction) with the node's (quantized) input.
struct FixHook {
  const IrGraph& q;
  const Plan& pl;
  std::function<int(int, const Tensor&)> fix_point;  // fix point for node i's output
  std::function<void(int, const Tensor& in, const Tensor& out)> after;  // Conv nodes, optional
  std::vector<Tensor> stash;                          // inputs kept for DPU activations / `after`
  std::vector<int> keep_until;                        // last node that needs stash[i]

  FixHook(const IrGraph& q_, const Plan& pl_, std::function<int(int, const Tensor&)> f,
          std::function<void(int, const Tensor&, const Tensor&)> a = {})
      : q(q_), pl(pl_), fix_point(std::move(f)), after(std::move(a)), stash(q_.nodes.size()),
        keep_until(q_.nodes.size(), -1) {
    for (size_t i = 0; i < q.nodes.size(); ++i)
      if (pl.dpu_act[i] || (after && q.nodes[i].op == IrOp::Conv)) keep_until[size_t(q.nodes[i].in[0])] = int(i);
  }
  void operator()(int i, Tensor& out) {
    const IrNode& n = q.nodes[size_t(i)];
    // recompute in the DPU's form from the quantized input (the graph ran the float form)
    if (pl.dpu_act[i]) dpu_hard_act(stash[size_t(n.in[0])], out, n.act == ops::Act::Hardswish);
    if (pl.has_fix[i]) {
      const int fp = fix_point(i, out);
      fake_quant_(out, fp, 8, kActRound);
    }
    if (after && n.op == IrOp::Conv) after(i, stash[size_t(n.in[0])], out);
    if (keep_until[i] >= 0) stash[i] = out;
    for (int p : n.in)
      if (keep_until[size_t(p)] == i) stash[size_t(p)] = Tensor();
  }
};

}  // namespace

namespace {

double mean_sq(const Tensor& t) {
  Tensor c = t.contiguous();
  const float* p = c.data<float>();
  double s = 0;
  for (int64_t i = 0; i < c.numel(); ++i) s += double(p[i]) * double(p[i]);
  return c.numel() ? s / double(c.numel()) : 0.0;
}

}  // namespace

std::vector<Tensor> Calibrator::add_batch(const Tensor& x) {
  auto fix = [&](int i, const Tensor& out) {
    int fp = 0;
    try {
      fp = std::min(kMaxFixPoint, diffs_fix_pos(out, 8, plan_.scope[i], kActRound));
    } catch (const Error& e) {
      fail("quant: calibrating node '", qg_.nodes[i].name, "': ", e.what());
    }
    history_[i].push_back(fp);
    return modal_fix_pos(history_[i]);
  };
  // Mirrors deephi_Conv2d.fake_quantize_forward's param_corr branch and eval_qnoise.
  auto correct = [&](int i, const Tensor& in, const Tensor& out) {
    BiasCorr& b = bc_[size_t(i)];
    if (b.stop) return;
    const IrNode& n = qg_.nodes[size_t(i)];
    ops::Conv2dParams cp;
    cp.stride = n.stride, cp.pad = n.pad, cp.dilation = n.dilation, cp.groups = n.groups;
    Tensor res_f = ops::conv2d(in, b.wf, b.bf, cp).contiguous();
    Tensor o = out.contiguous();
    const int64_t B = o.size(0), C = o.size(1), HW = o.size(2) * o.size(3);
    std::vector<double> mean(size_t(C), 0.0);
    double noise = 0;
    const float *po = o.data<float>(), *pf = res_f.data<float>();
    for (int64_t bi = 0; bi < B; ++bi)
      for (int64_t c = 0; c < C; ++c) {
        const int64_t off = (bi * C + c) * HW;
        double s = 0;
        for (int64_t k = 0; k < HW; ++k) {
          const double e = double(po[off + k] - pf[off + k]);
          s += e, noise += e * e;
        }
        mean[size_t(c)] += s;
      }
    noise /= double(o.numel());
    const double sig = mean_sq(res_f);
    if (noise > 0 && sig > 0) {
      const double eff = 1.25 * std::log10(sig / noise);
      const double dev = std::abs(eff - b.efficency);
      if (dev > 0) {
        b.efficency = (b.efficency * 4 + eff) * 0.2;
        b.deviation = (b.deviation * 4 + dev) * 0.2;
        if (b.efficency > 4.0) b.rate *= 0.5;
        if (b.efficency > 4.3 || (b.deviation / b.efficency) < 0.05 || std::abs(dev - b.deviation / dev) < 0.05)
          b.stop = true;
      } else {
        b.stop = true;
      }
    } else {
      b.stop = true;
    }
    if (b.stop) return;
    // bias -= rate * error.mean([0, 2, 3]) (the in-calibration bias stays off the grid, as NNDCT's)
    Tensor nb = n.bias.clone();
    float* pb = nb.data<float>();
    for (int64_t c = 0; c < C; ++c) pb[c] = pb[c] - float(b.rate) * float(mean[size_t(c)] / double(B * HW));
    qg_.nodes[size_t(i)].bias = nb;
  };
  FixHook hook = opt_.bias_correction ? FixHook(qg_, plan_, fix, correct) : FixHook(qg_, plan_, fix);
  auto outs = qg_.run(x, std::ref(hook));
  ++batches_;
  images_ += x.size(0);
  return outs;
}

QuantConfig Calibrator::finish(int img_size) const {
  Y7_CHECK(batches_ > 0, "quant: calibration saw no batch (empty data set?)");
  QuantConfig c;
  c.convert_silu_to_hswish = opt_.convert_silu_to_hswish;
  c.convert_sigmoid_to_hsigmoid = opt_.convert_sigmoid_to_hsigmoid;
  c.graph_hash = identity_;
  c.img_size = img_size;
  c.calib_batches = batches_, c.calib_images = images_;
  for (size_t i = 0; i < qg_.nodes.size(); ++i) {
    const IrNode& n = qg_.nodes[i];
    if (plan_.has_fix[i]) c.output[n.name] = modal_fix_pos(history_[i]);
    if (n.op == IrOp::Conv) c.param[n.name + ".weight"] = wfp_[i], c.param[n.name + ".bias"] = bfp_[i];
    if (n.op == IrOp::Conv && opt_.bias_correction) {  // deephi_Conv2d.bias_corr: bias_bak - bias
      std::vector<float> corr(size_t(n.bias.numel()));
      Tensor bf = bc_[i].bf.contiguous(), bq = n.bias.contiguous();
      for (size_t k = 0; k < corr.size(); ++k) corr[k] = bf.data<float>()[k] - bq.data<float>()[k];
      c.bias_corr[n.name] = std::move(corr);
    }
  }
  adjust_fix_points(qg_, plan_, c);
  return c;
}

// ---------------------------------------------------------------- test mode

FakeQuantGraph::FakeQuantGraph(const IrGraph& g, const QuantConfig& c, const QuantOptions& o) {
  check_config_matches(c, g, o);
  qg_ = convert_for_dpu(g, o);
  plan_ = make_plan(qg_);
  const int N = int(qg_.nodes.size());
  std::vector<int> wfp(N, 0), bfp(N, 0);
  fp_.assign(N, 0);
  for (int i = 0; i < N; ++i) {
    const IrNode& n = qg_.nodes[i];
    if (n.op == IrOp::Conv) wfp[i] = c.weight_fp(n.name), bfp[i] = c.bias_fp(n.name);
    if (plan_.has_fix[i]) fp_[i] = c.output_fp(n.name);
    auto bc = c.bias_corr.find(n.name);
    if (n.op == IrOp::Conv && bc != c.bias_corr.end()) {  // conv.py: bias -= bias_corr (mode 2)
      Y7_CHECK(int64_t(bc->second.size()) == n.bias.numel(), "quant config: bias_corr of conv '", n.name, "' has ",
               bc->second.size(), " values for ", n.bias.numel(), " channels");
      Tensor b = n.bias.contiguous().clone();
      for (int64_t k = 0; k < b.numel(); ++k) b.data<float>()[k] -= bc->second[size_t(k)];
      qg_.nodes[i].bias = b;
    }
  }
  for (auto& [name, v] : c.bias_corr) {
    const int k = qg_.find(name);
    Y7_CHECK(k >= 0 && qg_.nodes[size_t(k)].op == IrOp::Conv, "quant config: bias_corr for unknown conv '", name, "'");
  }
  quantize_params(qg_, wfp, bfp);
}

std::vector<Tensor> FakeQuantGraph::run(const Tensor& x) const {
  FixHook hook(qg_, plan_, [&](int i, const Tensor&) { return fp_[i]; });
  return qg_.run(x, std::ref(hook));
}

Tensor FakeQuantGraph::forward(const Tensor& x) const { return qg_.decode(run(x)); }

}  // namespace y7::quant
