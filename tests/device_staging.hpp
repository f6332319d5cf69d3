#pragma once
// Runs one Backend's ops on host arrays: each call copies its inputs into the backend's memory, runs the
// op, and copies its outputs (and in-out arrays) back. The method names and arguments are those of the
// float instantiations of kernels/cpu/ops.hpp, so a test case written once as `k.op(…)` runs on the
// CPU reference and on every backend (tests/test_ops.cpp).
#include <cstring>
#include <vector>

#include "kernels/backend.hpp"

namespace lt::testing {

// An array in a backend's memory, filled from the host or zeroed.
template <class T>
class DeviceArray {
 public:
  DeviceArray(const Backend& backend, size_t count) : backend_(backend), count_(count) {
    data_ = static_cast<T*>(backend.alloc(bytes()));
    backend.fill_zero(data_, bytes());
  }
  DeviceArray(const Backend& backend, const T* host, size_t count) : DeviceArray(backend, count) {
    if (host) backend.upload(data_, host, bytes());
  }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  ~DeviceArray() { backend_.release(data_); }
  T* get() const { return data_; }
  void to_host(T* host) const {
    if (host) backend_.download(host, data_, bytes());
  }
  T value() const {
    T v{};
    backend_.download(&v, data_, sizeof(T));
    return v;
  }

 private:
  size_t bytes() const { return sizeof(T) * count_; }
  const Backend& backend_;
  size_t count_;
  T* data_ = nullptr;
};

// A CellIndex uploaded, with its view.
class DeviceCellIndex {
 public:
  DeviceCellIndex(const Backend& b, const ops::CellIndexView& host)
      : point_cell_(b, host.point_cell, size_t(host.num_points)),
        cells_(b, host.cells, size_t(host.occupied)),
        cell_start_(b, host.cell_start, size_t(host.occupied + 1)),
        sorted_points_(b, host.sorted_points, size_t(host.cell_start[host.occupied])),
        point_slot_(b, host.point_slot, size_t(host.num_points)) {
    view_ = host;
    view_.point_cell = point_cell_.get();
    view_.cells = cells_.get();
    view_.cell_start = cell_start_.get();
    view_.sorted_points = sorted_points_.get();
    view_.point_slot = point_slot_.get();
  }
  const ops::CellIndexView& view() const { return view_; }

 private:
  DeviceArray<int64_t> point_cell_, cells_, cell_start_, sorted_points_, point_slot_;
  ops::CellIndexView view_;
};

// Thrown by Staged for an op its backend lists as unsupported (kernels/backend.hpp: supports_op): the
// device suites skip the case.
struct UnsupportedOp {
  const char* op;
};

struct Staged {
  const Backend& b;
  using F = DeviceArray<float>;
  using D = DeviceArray<double>;
  void need(const char* op) const {
    if (!supports_op(b, op)) throw UnsupportedOp{op};
  }

  void linear_forward(const float* x, const float* weight, const float* bias, float* y, int64_t rows, int in,
                      int out) const {
    F dx(b, x, size_t(rows * in)), dw(b, weight, size_t(out * in)), dbias(b, bias, size_t(out)),
        dy(b, size_t(rows * out));
    need("linear_forward");
    b.linear_forward(dx.get(), dw.get(), bias ? dbias.get() : nullptr, dy.get(), rows, in, out);
    dy.to_host(y);
  }
  void linear_backward(const float* x, const float* weight, const float* dy, float* dx, float* dweight, float* dbias,
                       int64_t rows, int in, int out) const {
    F devx(b, x, size_t(rows * in)), devw(b, weight, size_t(out * in)), devdy(b, dy, size_t(rows * out)),
        devdx(b, size_t(rows * in)), devdw(b, dweight, size_t(out * in)), devdb(b, dbias, size_t(out));
    need("linear_backward");
    b.linear_backward(devx.get(), devw.get(), devdy.get(), dx ? devdx.get() : nullptr, devdw.get(),
                      dbias ? devdb.get() : nullptr, rows, in, out);
    devdx.to_host(dx);
    devdw.to_host(dweight);
    devdb.to_host(dbias);
  }
  // The CPU ops' workspace argument is the backend's own business.
  template <class Workspace>
  void conv2d_forward(const float* x, const float* weight, const float* bias, float* y, const ops::Conv2dShape& s,
                      Workspace&) const {
    F dx(b, x, x_size(s)), dw(b, weight, w_size(s)), dbias(b, bias, size_t(s.out_channels)), dy(b, y_size(s));
    need("conv2d_forward");
    b.conv2d_forward(dx.get(), dw.get(), bias ? dbias.get() : nullptr, dy.get(), s);
    dy.to_host(y);
  }
  template <class Workspace>
  void conv2d_backward(const float* x, const float* weight, const float* dy, float* dx, float* dweight, float* dbias,
                       const ops::Conv2dShape& s, Workspace&) const {
    F devx(b, x, x_size(s)), devw(b, weight, w_size(s)), devdy(b, dy, y_size(s)), devdx(b, x_size(s)),
        devdw(b, dweight, w_size(s)), devdb(b, dbias, size_t(s.out_channels));
    need("conv2d_backward");
    b.conv2d_backward(devx.get(), devw.get(), devdy.get(), dx ? devdx.get() : nullptr, devdw.get(),
                      dbias ? devdb.get() : nullptr, s);
    devdx.to_host(dx);
    devdw.to_host(dweight);
    devdb.to_host(dbias);
  }
  template <class Workspace>
  void conv_transpose_forward(const float* x, const float* weight, const float* bias, float* y,
                              const ops::ConvTransposeShape& s, Workspace&) const {
    F dx(b, x, x_size(s)), dw(b, weight, w_size(s)), dbias(b, bias, size_t(s.out_channels)), dy(b, y_size(s));
    need("conv_transpose_forward");
    b.conv_transpose_forward(dx.get(), dw.get(), bias ? dbias.get() : nullptr, dy.get(), s);
    dy.to_host(y);
  }
  template <class Workspace>
  void conv_transpose_backward(const float* x, const float* weight, const float* dy, float* dx, float* dweight,
                               float* dbias, const ops::ConvTransposeShape& s, Workspace&) const {
    F devx(b, x, x_size(s)), devw(b, weight, w_size(s)), devdy(b, dy, y_size(s)), devdx(b, x_size(s)),
        devdw(b, dweight, w_size(s)), devdb(b, dbias, size_t(s.out_channels));
    need("conv_transpose_backward");
    b.conv_transpose_backward(devx.get(), devw.get(), devdy.get(), dx ? devdx.get() : nullptr, devdw.get(),
                              dbias ? devdb.get() : nullptr, s);
    devdx.to_host(dx);
    devdw.to_host(dweight);
    devdb.to_host(dbias);
  }
  static size_t x_size(const ops::Conv2dShape& s) { return size_t(s.batch) * s.in_channels * s.height * s.width; }
  static size_t w_size(const ops::Conv2dShape& s) {
    return size_t(s.out_channels) * s.in_channels * s.kernel * s.kernel;
  }
  static size_t y_size(const ops::Conv2dShape& s) {
    return size_t(s.batch) * s.out_channels * s.out_height() * s.out_width();
  }
  static size_t x_size(const ops::ConvTransposeShape& s) {
    return size_t(s.batch) * s.in_channels * s.height * s.width;
  }
  static size_t w_size(const ops::ConvTransposeShape& s) {
    return size_t(s.in_channels) * s.out_channels * s.stride * s.stride;
  }
  static size_t y_size(const ops::ConvTransposeShape& s) {
    return size_t(s.batch) * s.out_channels * s.stride * s.stride * s.height * s.width;
  }

  void batchnorm_sums(const float* x, const ops::BatchNormShape& s, double* sums) const {
    F dx(b, x, size_t(s.count() * s.channels));
    D dsums(b, size_t(2 * s.channels));
    need("batchnorm_sums");
    b.batchnorm_sums(dx.get(), s, dsums.get());
    dsums.to_host(sums);
  }
  void batchnorm_apply(const float* x, const float* mean, const float* invstd, const float* gamma, const float* beta,
                       float* y, const ops::BatchNormShape& s) const {
    const size_t n = size_t(s.count() * s.channels), c = size_t(s.channels);
    F dx(b, x, n), dmean(b, mean, c), dinvstd(b, invstd, c), dgamma(b, gamma, c), dbeta(b, beta, c), dy(b, n);
    need("batchnorm_apply");
    b.batchnorm_apply(dx.get(), dmean.get(), dinvstd.get(), dgamma.get(), dbeta.get(), dy.get(), s);
    dy.to_host(y);
  }
  void batchnorm_backward_sums(const float* x, const float* dy, const float* mean, const float* invstd,
                               const ops::BatchNormShape& s, double* sums) const {
    const size_t n = size_t(s.count() * s.channels), c = size_t(s.channels);
    F dx(b, x, n), ddy(b, dy, n), dmean(b, mean, c), dinvstd(b, invstd, c);
    D dsums(b, 2 * c);
    need("batchnorm_backward_sums");
    b.batchnorm_backward_sums(dx.get(), ddy.get(), dmean.get(), dinvstd.get(), s, dsums.get());
    dsums.to_host(sums);
  }
  void batchnorm_backward_apply(const float* x, const float* dy, const float* mean, const float* invstd,
                                const float* gamma, const double* sums, double count, float* dx, float* dgamma,
                                float* dbeta, const ops::BatchNormShape& s) const {
    const size_t n = size_t(s.count() * s.channels), c = size_t(s.channels);
    F devx(b, x, n), devdy(b, dy, n), dmean(b, mean, c), dinvstd(b, invstd, c), dg(b, gamma, c), ddx(b, n),
        ddgamma(b, dgamma, c), ddbeta(b, dbeta, c);
    D dsums(b, sums, 2 * c);
    need("batchnorm_backward_apply");
    b.batchnorm_backward_apply(devx.get(), devdy.get(), dmean.get(), dinvstd.get(), dg.get(), dsums.get(), count,
                               dx ? ddx.get() : nullptr, dgamma ? ddgamma.get() : nullptr,
                               dbeta ? ddbeta.get() : nullptr, s);
    ddx.to_host(dx);
    ddgamma.to_host(dgamma);
    ddbeta.to_host(dbeta);
  }
  void relu_forward(const float* x, float* y, int64_t n) const {
    F dx(b, x, size_t(n)), dy(b, size_t(n));
    need("relu_forward");
    b.relu_forward(dx.get(), dy.get(), n);
    dy.to_host(y);
  }
  void relu_backward(const float* y, const float* dy, float* dx, int64_t n) const {
    F devy(b, y, size_t(n)), devdy(b, dy, size_t(n)), devdx(b, size_t(n));
    need("relu_backward");
    b.relu_backward(devy.get(), devdy.get(), devdx.get(), n);
    devdx.to_host(dx);
  }
  void concat_channels(const float* a, int ca, const float* bb, int cb, int64_t outer, int64_t inner,
                       float* out) const {
    F da(b, a, size_t(outer * ca * inner)), db(b, bb, size_t(outer * cb * inner)),
        dout(b, size_t(outer * (ca + cb) * inner));
    need("concat_channels");
    b.concat_channels(da.get(), ca, db.get(), cb, outer, inner, dout.get());
    dout.to_host(out);
  }
  void split_channels(const float* in, int ca, int cb, int64_t outer, int64_t inner, float* a, float* bb) const {
    F din(b, in, size_t(outer * (ca + cb) * inner)), da(b, size_t(outer * ca * inner)),
        db(b, size_t(outer * cb * inner));
    need("split_channels");
    b.split_channels(din.get(), ca, cb, outer, inner, a ? da.get() : nullptr, bb ? db.get() : nullptr);
    da.to_host(a);
    db.to_host(bb);
  }
  void voxelize_max_forward(const float* features, const ops::CellIndexView& index, int channels, int64_t cells_per_map,
                            float* grid, int64_t* argmax) const {
    DeviceCellIndex di(b, index);
    F df(b, features, size_t(index.num_points * channels)), dgrid(b, size_t(index.num_cells * channels));
    DeviceArray<int64_t> dargmax(b, size_t(index.occupied * channels));
    need("voxelize_max_forward");
    b.voxelize_max_forward(df.get(), di.view(), channels, cells_per_map, dgrid.get(), dargmax.get());
    dgrid.to_host(grid);
    dargmax.to_host(argmax);
  }
  void voxelize_max_backward(const float* dgrid, const ops::CellIndexView& index, const int64_t* argmax, int channels,
                             int64_t cells_per_map, float* dfeatures) const {
    DeviceCellIndex di(b, index);
    F dg(b, dgrid, size_t(index.num_cells * channels)), dfeat(b, dfeatures, size_t(index.num_points * channels));
    DeviceArray<int64_t> dargmax(b, argmax, size_t(index.occupied * channels));
    need("voxelize_max_backward");
    b.voxelize_max_backward(dg.get(), di.view(), dargmax.get(), channels, cells_per_map, dfeat.get());
    dfeat.to_host(dfeatures);
  }
  void scatter_mean_forward(const float* features, const ops::CellIndexView& index, int channels, float* mean) const {
    DeviceCellIndex di(b, index);
    F df(b, features, size_t(index.num_points * channels)), dmean(b, size_t(index.occupied * channels));
    need("scatter_mean_forward");
    b.scatter_mean_forward(df.get(), di.view(), channels, dmean.get());
    dmean.to_host(mean);
  }
  void scatter_mean_backward(const float* dmean, const ops::CellIndexView& index, int channels,
                             float* dfeatures) const {
    DeviceCellIndex di(b, index);
    F dm(b, dmean, size_t(index.occupied * channels)), dfeat(b, dfeatures, size_t(index.num_points * channels));
    need("scatter_mean_backward");
    b.scatter_mean_backward(dm.get(), di.view(), channels, dfeat.get());
    dfeat.to_host(dfeatures);
  }
  void devoxelize_forward(const float* grid, const ops::CellIndexView& index, int channels, int64_t cells_per_map,
                          float* features) const {
    DeviceCellIndex di(b, index);
    F dg(b, grid, size_t(index.num_cells * channels)), dfeat(b, size_t(index.num_points * channels));
    need("devoxelize_forward");
    b.devoxelize_forward(dg.get(), di.view(), channels, cells_per_map, dfeat.get());
    dfeat.to_host(features);
  }
  void devoxelize_backward(const float* dfeatures, const ops::CellIndexView& index, int channels, int64_t cells_per_map,
                           float* dgrid) const {
    DeviceCellIndex di(b, index);
    F dfeat(b, dfeatures, size_t(index.num_points * channels)), dg(b, dgrid, size_t(index.num_cells * channels));
    need("devoxelize_backward");
    b.devoxelize_backward(dfeat.get(), di.view(), channels, cells_per_map, dg.get());
    dg.to_host(dgrid);
  }
  double cross_entropy(const float* logits, const uint8_t* labels, int64_t rows, int classes,
                       const float* class_weights, int ignore_label, float* dlogits) const {
    F dl(b, logits, size_t(rows * classes)), dw(b, class_weights, size_t(classes)), dd(b, size_t(rows * classes));
    DeviceArray<uint8_t> dlabels(b, labels, size_t(rows));
    D loss(b, 1);
    need("cross_entropy");
    b.cross_entropy(dl.get(), dlabels.get(), rows, classes, class_weights ? dw.get() : nullptr, ignore_label,
                    dlogits ? dd.get() : nullptr, loss.get());
    dd.to_host(dlogits);
    return loss.value();
  }
  double focal_loss(const float* logits, const float* targets, int64_t n, float* dlogits) const {
    F dl(b, logits, size_t(n)), dt(b, targets, size_t(n)), dd(b, size_t(n));
    D loss(b, 1);
    need("focal_loss");
    b.focal_loss(dl.get(), dt.get(), n, dlogits ? dd.get() : nullptr, loss.get());
    dd.to_host(dlogits);
    return loss.value();
  }
  double l1_loss(const float* pred, const float* target, int64_t rows, int channels, float* dpred) const {
    const size_t n = size_t(rows * channels);
    F dp(b, pred, n), dt(b, target, n), dd(b, n);
    D loss(b, 1);
    need("l1_loss");
    b.l1_loss(dp.get(), dt.get(), rows, channels, dpred ? dd.get() : nullptr, loss.get());
    dd.to_host(dpred);
    return loss.value();
  }
  // `maps_size` = B·C·plane (the ops take it implicitly from the positions).
  void gather_positions_forward(const float* maps, const int64_t* positions, int64_t k, int channels, int64_t plane,
                                float* rows, size_t maps_size) const {
    F dm(b, maps, maps_size), dr(b, size_t(k * channels));
    DeviceArray<int64_t> dpos(b, positions, size_t(k));
    need("gather_positions_forward");
    b.gather_positions_forward(dm.get(), dpos.get(), k, channels, plane, dr.get());
    dr.to_host(rows);
  }
  void gather_positions_backward(const float* drows, const int64_t* positions, int64_t k, int channels, int64_t plane,
                                 float* dmaps, size_t maps_size) const {
    F dr(b, drows, size_t(k * channels)), dm(b, dmaps, maps_size);
    DeviceArray<int64_t> dpos(b, positions, size_t(k));
    need("gather_positions_backward");
    b.gather_positions_backward(dr.get(), dpos.get(), k, channels, plane, dm.get());
    dm.to_host(dmaps);
  }
  // ---- BatchNorm with its ReLU fused in ----
  void batchnorm_relu_apply(const float* x, const float* mean, const float* invstd, const float* gamma,
                            const float* beta, float* y, const ops::BatchNormShape& s) const {
    const size_t n = size_t(s.count() * s.channels), c = size_t(s.channels);
    F dx(b, x, n), dm(b, mean, c), di(b, invstd, c), dg(b, gamma, c), dbeta(b, beta, c), dy(b, n);
    need("batchnorm_relu_apply");
    b.batchnorm_relu_apply(dx.get(), dm.get(), di.get(), dg.get(), dbeta.get(), dy.get(), s);
    dy.to_host(y);
  }
  void batchnorm_relu_backward_sums(const float* x, const float* dy, const float* mean, const float* invstd,
                                    const float* gamma, const float* beta, const ops::BatchNormShape& s,
                                    double* sums) const {
    const size_t n = size_t(s.count() * s.channels), c = size_t(s.channels);
    F dx(b, x, n), ddy(b, dy, n), dm(b, mean, c), di(b, invstd, c), dg(b, gamma, c), dbeta(b, beta, c);
    D dsums(b, 2 * c);
    need("batchnorm_relu_backward_sums");
    b.batchnorm_relu_backward_sums(dx.get(), ddy.get(), dm.get(), di.get(), dg.get(), dbeta.get(), s, dsums.get());
    dsums.to_host(sums);
  }
  void batchnorm_relu_backward_apply(const float* x, const float* dy, const float* mean, const float* invstd,
                                     const float* gamma, const float* beta, const double* sums, double count, float* dx,
                                     float* dgamma, float* dbeta, const ops::BatchNormShape& s) const {
    const size_t n = size_t(s.count() * s.channels), c = size_t(s.channels);
    F devx(b, x, n), ddy(b, dy, n), dm(b, mean, c), di(b, invstd, c), dg(b, gamma, c), db(b, beta, c), ddx(b, n),
        ddg(b, dgamma, c), ddb(b, dbeta, c);
    D dsums(b, sums, 2 * c);
    need("batchnorm_relu_backward_apply");
    b.batchnorm_relu_backward_apply(devx.get(), ddy.get(), dm.get(), di.get(), dg.get(), db.get(), dsums.get(), count,
                                    dx ? ddx.get() : nullptr, dgamma ? ddg.get() : nullptr, dbeta ? ddb.get() : nullptr,
                                    s);
    ddx.to_host(dx);
    ddg.to_host(dgamma);
    ddb.to_host(dbeta);
  }
  // ---- inference with BatchNorm folded ----
  void linear_relu_forward(const float* x, const float* weight, const float* bias, float* y, int64_t rows, int in,
                           int out) const {
    F dx(b, x, size_t(rows * in)), dw(b, weight, size_t(out * in)), dbias(b, bias, size_t(out)),
        dy(b, size_t(rows * out));
    need("linear_relu_forward");
    b.linear_relu_forward(dx.get(), dw.get(), dbias.get(), dy.get(), rows, in, out);
    dy.to_host(y);
  }
  template <class Workspace>
  void conv2d_relu_forward(const float* x, const float* weight, const float* bias, float* y, const ops::Conv2dShape& s,
                           Workspace&) const {
    F dx(b, x, x_size(s)), dw(b, weight, w_size(s)), dbias(b, bias, size_t(s.out_channels)), dy(b, y_size(s));
    need("conv2d_relu_forward");
    b.conv2d_relu_forward(dx.get(), dw.get(), dbias.get(), dy.get(), s);
    dy.to_host(y);
  }
  template <class Workspace>
  void conv_transpose_relu_forward(const float* x, const float* weight, const float* bias, float* y,
                                   const ops::ConvTransposeShape& s, Workspace&) const {
    F dx(b, x, x_size(s)), dw(b, weight, w_size(s)), dbias(b, bias, size_t(s.out_channels)), dy(b, y_size(s));
    need("conv_transpose_relu_forward");
    b.conv_transpose_relu_forward(dx.get(), dw.get(), dbias.get(), dy.get(), s);
    dy.to_host(y);
  }
  void conv2d_relu_at_cells(const float* x, const float* weight, const float* bias, const ops::Conv2dShape& s,
                            const ops::CellIndexView& index, float* rows) const {
    DeviceCellIndex di(b, index);
    F dx(b, x, x_size(s)), dw(b, weight, w_size(s)), dbias(b, bias, size_t(s.out_channels)),
        dr(b, size_t(index.occupied * s.out_channels));
    need("conv2d_relu_at_cells");
    b.conv2d_relu_at_cells(dx.get(), dw.get(), dbias.get(), s, di.view(), dr.get());
    dr.to_host(rows);
  }
  void linear_relu_voxelize_max_forward(const float* x, const float* weight, const float* bias, float* y, int64_t rows,
                                        int in, int out, const ops::CellIndexView& index, int64_t cells_per_map,
                                        float* grid) const {
    DeviceCellIndex di(b, index);
    F dx(b, x, size_t(rows * in)), dw(b, weight, size_t(out * in)), dbias(b, bias, size_t(out)),
        dy(b, y ? size_t(rows * out) : 0), dgrid(b, size_t(index.num_cells * out));
    need("linear_relu_voxelize_max_forward");
    b.linear_relu_voxelize_max_forward(dx.get(), dw.get(), dbias.get(), y ? dy.get() : nullptr, rows, in, out,
                                       di.view(), cells_per_map, dgrid.get());
    if (y) dy.to_host(y);
    dgrid.to_host(grid);
  }
  void devoxelize_head_forward(const float* cell_features, const ops::CellIndexView& index, const float* point_features,
                               const float* w1, const float* b1, const float* w2, const float* b2,
                               const ops::PointHeadShape& s, float* logits) const {
    DeviceCellIndex di(b, index);
    const size_t width = size_t(s.grid_channels + s.point_channels);
    F dg(b, cell_features, size_t(index.occupied * s.grid_channels)),
        dp(b, point_features, size_t(index.num_points * s.point_channels)), dw1(b, w1, size_t(s.hidden) * width),
        db1(b, b1, size_t(s.hidden)), dw2(b, w2, size_t(s.classes * s.hidden)), db2(b, b2, size_t(s.classes)),
        dl(b, size_t(index.num_points * s.classes));
    need("devoxelize_head_forward");
    b.devoxelize_head_forward(dg.get(), di.view(), dp.get(), dw1.get(), db1.get(), dw2.get(), db2.get(), s, dl.get());
    dl.to_host(logits);
  }
  void max_pool3x3(const float* x, float* y, int64_t maps, int height, int width) const {
    const size_t n = size_t(maps * height * width);
    F dx(b, x, n), dy(b, n);
    need("max_pool3x3");
    b.max_pool3x3(dx.get(), dy.get(), maps, height, width);
    dy.to_host(y);
  }
};

}  // namespace lt::testing
