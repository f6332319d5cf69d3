#include "mpi/grad_buckets.hpp"

#include <algorithm>
#include <cassert>
#include <cstdio>

#include "src/common/clock.hpp"

namespace lt {

GradientBuckets::GradientBuckets(ReduceBackend& backend, const std::vector<int64_t>& tensor_starts, int64_t total,
                                 int64_t bucket_bytes)
    : backend_(backend) {
  const int64_t bucket_floats = std::max<int64_t>(1, bucket_bytes / int64_t(sizeof(float)));
  int64_t end = total;
  // Walk the tensors from the last: close a bucket once it holds at least bucket_floats.
  for (size_t t = tensor_starts.size(); t-- > 0;) {
    const int64_t begin = tensor_starts[t];
    if (end - begin >= bucket_floats || t == 0) {
      buckets_.push_back(GradBucket{t == 0 ? 0 : begin, end});
      end = begin;
    }
  }
  if (buckets_.empty() && total > 0) buckets_.push_back(GradBucket{0, total});
  handles_.assign(buckets_.size(), -1);
}

void GradientBuckets::begin_step(float* grads) {
  assert(posted_ == 0 || posted_ == int(buckets_.size()));
  grads_ = grads;
  posted_ = 0;
  finished_before_ = backend_.finished_sums();
  wait_s_ = 0;
  for (GradBucket& bucket : buckets_) bucket.posted_s = bucket.done_s = -1;
}

void GradientBuckets::post_ready(int64_t first_final) {
  while (posted_ < int(buckets_.size()) && buckets_[size_t(posted_)].begin >= first_final) {
    const int b = posted_;
    GradBucket& bucket = buckets_[size_t(b)];
    bucket.posted_s = now_s();
    posted_ = b + 1;  // first: pending() names it while start_sum blocks (a peer that never posts it)
    handles_[size_t(b)] = backend_.start_sum(grads_ + bucket.begin, bucket.end - bucket.begin);
  }
}

void GradientBuckets::grads_ready(int64_t first_final) {
  post_ready(first_final);
  if (backend_.sums_device_memory()) return;  // a device progresses its sums by itself
  for (int b = 0; b < posted_; ++b)
    if (buckets_[size_t(b)].done_s < 0 && backend_.test(handles_[size_t(b)])) buckets_[size_t(b)].done_s = now_s();
}

void GradientBuckets::wait(int index) {
  post_ready(0);
  GradBucket& bucket = buckets_[size_t(index)];
  if (bucket.done_s >= 0) return;
  const double start = now_s();
  backend_.wait(handles_[size_t(index)]);
  bucket.done_s = now_s();
  wait_s_ += bucket.done_s - start;
}

std::string GradientBuckets::pending() const {
  const int64_t arrived = backend_.finished_sums() - finished_before_.load();
  if (arrived < 0 || arrived >= posted_.load()) return "";
  const GradBucket& bucket = buckets_[size_t(arrived)];
  char text[96];
  std::snprintf(text, sizeof text, "bucket %lld of %zu (%.2f MB)", static_cast<long long>(arrived), buckets_.size(),
                double(bucket.end - bucket.begin) * sizeof(float) / 1e6);
  return text;
}

void GradientBuckets::wait_all() {
  for (int b = 0; b < int(buckets_.size()); ++b) wait(b);
}

}  // namespace lt
