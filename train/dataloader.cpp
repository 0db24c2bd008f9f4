#include "train/dataloader.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <random>

#include "core/error.h"

namespace y7::train {

namespace {

// F.interpolate(scale_factor=2, mode='bilinear', align_corners=False) of an HWC uint8 image, then
// .type(uint8) (truncation). With scale 2 the weights are 1/4 and 3/4, so every value is an exact
// multiple of 1/16 in float and the result does not depend on the summation order.
io::Image upscale2_bilinear(const io::Image& im) {
  io::Image o;
  o.w = im.w * 2, o.h = im.h * 2, o.c = im.c, o.order = im.order;
  o.data.resize(size_t(o.w) * o.h * o.c);
  auto src = [](int d, int n, int& i0, int& i1, float& l1) {
    float s = std::max((float(d) + 0.5f) * 0.5f - 0.5f, 0.0f);
    i0 = int(s);
    i1 = i0 + (i0 < n - 1 ? 1 : 0);
    l1 = s - float(i0);
  };
  for (int y = 0; y < o.h; ++y) {
    int y0, y1;
    float ly;
    src(y, im.h, y0, y1, ly);
    for (int x = 0; x < o.w; ++x) {
      int x0, x1;
      float lx;
      src(x, im.w, x0, x1, lx);
      for (int k = 0; k < im.c; ++k) {
        auto at = [&](int yy, int xx) { return float(im.data[(size_t(yy) * im.w + xx) * im.c + k]); };
        float v = (1 - ly) * ((1 - lx) * at(y0, x0) + lx * at(y0, x1)) + ly * ((1 - lx) * at(y1, x0) + lx * at(y1, x1));
        o.data[(size_t(y) * o.w + x) * o.c + k] = uint8_t(v);
      }
    }
  }
  return o;
}

}  // namespace

Batch collate4(std::vector<Item>& items, Rng& rng) {
  const size_t n = items.size() / 4;
  Y7_CHECK(n > 0, "collate4 (--quad): a batch needs at least 4 images, got ", items.size());
  std::vector<Item> quads(n);
  for (size_t g = 0; g < n; ++g) {
    Item* it = &items[4 * g];
    const int H = it[0].img.h, W = it[0].img.w, C = it[0].img.c;
    Item& q = quads[g];
    q.path = it[0].path;
    q.has_shapes = it[0].has_shapes, q.h0 = it[0].h0, q.w0 = it[0].w0;
    q.ratio_h = it[0].ratio_h, q.ratio_w = it[0].ratio_w, q.letterbox_ratio = it[0].letterbox_ratio;
    q.pad_w = it[0].pad_w, q.pad_h = it[0].pad_h;
    if (rng.uniform() < 0.5) {
      q.img = upscale2_bilinear(it[0].img);
      q.labels = it[0].labels;
    } else {
      for (int k = 1; k < 4; ++k)
        Y7_CHECK(it[k].img.h == H && it[k].img.w == W && it[k].img.c == C, "collate4: image ", it[k].path,
                 " has another size");
      q.img.w = 2 * W, q.img.h = 2 * H, q.img.c = C, q.img.order = it[0].img.order;
      q.img.data.resize(size_t(4) * W * H * C);
      const int oy[4] = {0, H, 0, H}, ox[4] = {0, 0, W, W};  // [0 above 1 | 2 above 3]
      for (int k = 0; k < 4; ++k) {
        Y7_CHECK(it[k].img.order == q.img.order, "collate4: mixed pixel orders");
        for (int y = 0; y < H; ++y)
          std::memcpy(&q.img.data[(size_t(oy[k] + y) * 2 * W + ox[k]) * C], &it[k].img.data[size_t(y) * W * C],
                      size_t(W) * C);
        for (auto l : it[k].labels) {
          l[2] = (l[2] + (ox[k] ? 1.f : 0.f)) * 0.5f;  // x, y shifted by one tile, then all four halved
          l[3] = (l[3] + (oy[k] ? 1.f : 0.f)) * 0.5f;
          l[4] *= 0.5f, l[5] *= 0.5f;
          q.labels.push_back(l);
        }
      }
    }
  }
  return collate(quads);
}

Batch collate(std::vector<Item>& items) {
  Y7_CHECK(!items.empty(), "collate: empty batch");
  const int H = items[0].img.h, W = items[0].img.w;
  size_t nl = 0;
  for (const auto& it : items) {
    Y7_CHECK(it.img.h == H && it.img.w == W && it.img.c == 3, "collate: image ", it.path, " is ", it.img.w, "x",
             it.img.h, ", batch is ", W, "x", H);
    nl += it.labels.size();
  }
  Batch b;
  const int64_t B = int64_t(items.size());
  b.imgs = Tensor::empty({B, 3, H, W});
  b.targets = Tensor::zeros({int64_t(nl), 6});
  float* d = b.imgs.data<float>();
  float* t = b.targets.data<float>();
  const size_t hw = size_t(H) * W;
  for (int64_t i = 0; i < B; ++i) {
    Item& it = items[size_t(i)];
    const bool bgr = it.img.order == io::PixelOrder::BGR;
    const uint8_t* s = it.img.data.data();
    float* di = d + size_t(i) * 3 * hw;
    for (int k = 0; k < 3; ++k) {
      const int sk = bgr ? 2 - k : k;
      float* dk = di + size_t(k) * hw;
      for (size_t p = 0; p < hw; ++p) dk[p] = float(s[p * 3 + sk]) / 255.0f;
    }
    for (const auto& l : it.labels) {
      t[0] = float(i);
      std::memcpy(t + 1, l.data() + 1, 5 * sizeof(float));
      t += 6;
    }
    ItemInfo info;
    info.path = it.path, info.has_shapes = it.has_shapes, info.h0 = it.h0, info.w0 = it.w0;
    info.ratio_h = it.ratio_h, info.ratio_w = it.ratio_w, info.letterbox_ratio = it.letterbox_ratio;
    info.pad_w = it.pad_w, info.pad_h = it.pad_h;
    b.items.push_back(std::move(info));
  }
  return b;
}

DataLoader::DataLoader(const Dataset& ds, const LoaderOptions& opt) : ds_(ds), opt_(opt) {
  Y7_CHECK(opt_.batch_size > 0, "dataloader: batch size must be > 0");
  Y7_CHECK(opt_.workers >= 0 && opt_.workers <= 256, "dataloader: bad worker count ", opt_.workers);
  opt_.prefetch = std::max(1, opt_.prefetch);
}

DataLoader::~DataLoader() { stop(); }

size_t DataLoader::num_batches() const {
  const size_t n = ds_.size(), b = size_t(opt_.batch_size);
  return opt_.drop_last ? n / b : (n + b - 1) / b;
}

void DataLoader::stop() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stopping_ = true;
  }
  cv_work_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
  stopping_ = false;
}

void DataLoader::start_epoch(int epoch) {
  stop();
  order_.resize(ds_.size());
  std::iota(order_.begin(), order_.end(), size_t(0));
  epoch_seed_ = Rng::mix(opt_.seed, uint64_t(uint32_t(epoch)));
  if (opt_.shuffle) {
    std::mt19937_64 g(Rng::mix(epoch_seed_, 0x5348554646ull));
    for (size_t i = order_.size(); i > 1; --i) {  // Fisher-Yates with a portable draw
      size_t j = size_t(g() % i);
      std::swap(order_[i - 1], order_[j]);
    }
  }
  if (!ds_.indices().empty())  // --image-weights: positions map through the epoch's weighted sample
    for (size_t& o : order_) o = ds_.indices()[o];
  nb_ = int(num_batches());
  next_take_ = next_out_ = 0;
  ready_.clear();
  errors_.clear();
  for (int i = 0; i < opt_.workers; ++i) threads_.emplace_back([this] { worker(); });
}

Batch DataLoader::build(int b) const {
  const size_t a = size_t(b) * opt_.batch_size, e = std::min(order_.size(), a + opt_.batch_size);
  std::vector<Item> items;
  // (with a weighted sample an image may come twice: its copies get their own draws)
  for (size_t i = a; i < e; ++i)
    items.push_back(ds_.get(order_[i], ds_.indices().empty() ? epoch_seed_ : Rng::mix(epoch_seed_, 0x1000000 + i)));
  Batch out;
  if (opt_.quad) {
    Rng rng(Rng::mix(epoch_seed_, 0x71756164ull + uint64_t(b)));
    out = collate4(items, rng);
  } else {
    out = collate(items);
  }
  out.index = b;
  return out;
}

void DataLoader::worker() {
  const int window = opt_.prefetch * std::max(1, opt_.workers);
  for (;;) {
    int b;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_work_.wait(lk, [&] { return stopping_ || next_take_ >= nb_ || next_take_ < next_out_ + window; });
      if (stopping_ || next_take_ >= nb_) return;
      b = next_take_++;
    }
    Batch batch;
    std::string err;
    try {
      batch = build(b);
    } catch (const std::exception& e) {
      err = e.what();
    }
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (err.empty())
        ready_.emplace(b, std::move(batch));
      else
        errors_.emplace(b, err);
    }
    cv_ready_.notify_all();
  }
}

bool DataLoader::next(Batch& out) {
  if (next_out_ >= nb_) return false;
  const int b = next_out_;
  if (opt_.workers == 0) {
    out = build(b);
    ++next_out_;
    return true;
  }
  std::unique_lock<std::mutex> lk(mu_);
  cv_ready_.wait(lk, [&] { return ready_.count(b) || errors_.count(b); });
  ++next_out_;
  if (auto e = errors_.find(b); e != errors_.end()) {
    std::string msg = e->second;
    errors_.erase(e);
    lk.unlock();
    cv_work_.notify_all();
    throw Error(msg);
  }
  auto it = ready_.find(b);
  out = std::move(it->second);
  ready_.erase(it);
  lk.unlock();
  cv_work_.notify_all();
  return true;
}

LoaderPair make_train_loader(const std::vector<std::string>& sources, int img_size, int batch_size, int stride,
                             const AugmentHyp& hyp, int workers, uint64_t seed, bool rect, bool single_cls,
                             bool quad) {
  Y7_CHECK(!quad || (batch_size >= 4 && batch_size % 4 == 0), "--quad needs a batch size that is a multiple of 4, got ",
           batch_size);
  DatasetOptions o;
  o.img_size = img_size, o.batch_size = batch_size, o.stride = stride, o.hyp = hyp, o.augment = true;
  o.rect = rect, o.single_cls = single_cls, o.prefix = "train: ";
  LoaderPair p;
  p.dataset = std::make_unique<Dataset>(sources, o);
  LoaderOptions lo;
  lo.batch_size = batch_size, lo.workers = workers, lo.shuffle = !rect, lo.seed = seed;
  lo.quad = quad;
  lo.drop_last = quad && p.dataset->size() % size_t(batch_size) < 4;  // a last batch of < 4 items has no quad
  p.loader = std::make_unique<DataLoader>(*p.dataset, lo);
  return p;
}

LoaderPair make_val_loader(const std::vector<std::string>& sources, int img_size, int batch_size, int stride,
                           int workers, bool single_cls, bool rect) {
  DatasetOptions o;
  o.img_size = img_size, o.batch_size = batch_size, o.stride = stride, o.augment = false, o.rect = rect, o.pad = 0.5;
  o.single_cls = single_cls, o.prefix = "val: ";
  LoaderPair p;
  p.dataset = std::make_unique<Dataset>(sources, o);
  LoaderOptions lo;
  lo.batch_size = batch_size, lo.workers = workers, lo.shuffle = false;
  p.loader = std::make_unique<DataLoader>(*p.dataset, lo);
  return p;
}

}  // namespace y7::train
