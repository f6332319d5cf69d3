#pragma once
// Exact IoU of two rotated rectangles in bird's-eye view (boxes x, y, z, dx, dy, dz, heading; only
// x, y, dx, dy and heading count): the intersection polygon is one rectangle clipped by the other's four
// edges (Sutherland–Hodgman; two convex quadrilaterals meet in at most 8 vertices), its area by the
// shoelace formula. In double, on fixed arrays, so the CUDA NMS kernel and the CPU share it.
#include <cmath>

#include "kernels/common/hd.hpp"

namespace lt {

// The four corners of a box's footprint, counter-clockwise.
LT_HD void bev_corners(const float* box, double* xs, double* ys) {
  using std::cos;
  using std::sin;
  const double c = cos(double(box[6])), s = sin(double(box[6]));
  const double hl = 0.5 * double(box[3]), hw = 0.5 * double(box[4]);
  const double u[4] = {hl, -hl, -hl, hl}, v[4] = {hw, hw, -hw, -hw};
  for (int i = 0; i < 4; ++i) {
    xs[i] = double(box[0]) + c * u[i] - s * v[i];
    ys[i] = double(box[1]) + s * u[i] + c * v[i];
  }
}

// Area of a polygon (shoelace; positive when counter-clockwise).
LT_HD double polygon_area(const double* xs, const double* ys, int n) {
  double twice = 0;
  for (int i = 0; i < n; ++i) {
    const int j = (i + 1) % n;
    twice += xs[i] * ys[j] - xs[j] * ys[i];
  }
  return 0.5 * twice;
}

// Area of the intersection of two boxes' footprints.
LT_HD double bev_intersection_area(const float* a, const float* b) {
  double px[16], py[16], qx[16], qy[16];  // the clipped polygon, and the next clip's output
  double cx[4], cy[4];
  bev_corners(a, px, py);
  bev_corners(b, cx, cy);
  int n = 4;
  for (int e = 0; e < 4 && n > 0; ++e) {
    // Keep the part of the polygon left of (inside) the clip edge c[e] → c[e + 1].
    const double ex = cx[e], ey = cy[e], fx = cx[(e + 1) % 4] - ex, fy = cy[(e + 1) % 4] - ey;
    int m = 0;
    for (int i = 0; i < n; ++i) {
      const int j = (i + 1) % n;
      const double si = fx * (py[i] - ey) - fy * (px[i] - ex), sj = fx * (py[j] - ey) - fy * (px[j] - ex);
      if (si >= 0) qx[m] = px[i], qy[m] = py[i], ++m;
      if ((si >= 0) != (sj >= 0)) {
        const double t = si / (si - sj);
        qx[m] = px[i] + t * (px[j] - px[i]), qy[m] = py[i] + t * (py[j] - py[i]), ++m;
      }
    }
    n = m;
    for (int i = 0; i < n; ++i) px[i] = qx[i], py[i] = qy[i];
  }
  if (n < 3) return 0.0;
  const double area = polygon_area(px, py, n);
  return area > 0 ? area : 0.0;
}

// IoU of two boxes in BEV; 0 when either has no area.
LT_HD double bev_iou(const float* a, const float* b) {
  const double area_a = double(a[3]) * double(a[4]), area_b = double(b[3]) * double(b[4]);
  if (!(area_a > 0) || !(area_b > 0)) return 0.0;
  const double inter = bev_intersection_area(a, b);
  const double uni = area_a + area_b - inter;
  return uni > 0 ? inter / uni : 0.0;
}

}  // namespace lt
