#!/usr/bin/python3
"""Compares two lidartrain checkpoints tensor by tensor.

    scripts/compare_checkpoints.py A.h5 B.h5 [--groups model optimizer] [--rtol 1e-5]

The relative difference of everything under the groups taken as one vector, ||a - b|| / ||b|| (L2),
and per tensor (the largest few are printed). Exits 1 when the whole-vector difference exceeds --rtol
(with --per-tensor: when any tensor's does), or a tensor is missing or shaped differently; 0 otherwise.
--rtol 0 asks for bit-identical tensors.
"""
import argparse
import sys

import h5py
import numpy as np


def tensors(path, groups):
    found = {}
    with h5py.File(path, "r") as f:
        for group in groups:
            if group not in f:
                continue
            f[group].visititems(lambda name, obj: found.__setitem__(f"{group}/{name}", obj[()])
                                if isinstance(obj, h5py.Dataset) else None)
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--groups", nargs="+", default=["model", "optimizer"])
    parser.add_argument("--rtol", type=float, default=1e-5)
    parser.add_argument("--per-tensor", action="store_true", help="apply --rtol to every tensor")
    args = parser.parse_args()
    a, b = tensors(args.a, args.groups), tensors(args.b, args.groups)
    if not a:
        print(f"{args.a}: no tensors under {', '.join(args.groups)}", file=sys.stderr)
        return 1
    if set(a) != set(b):
        print(f"tensor names differ: {sorted(set(a) ^ set(b))[:5]}", file=sys.stderr)
        return 1
    differences = []
    diff_sq = norm_sq = 0.0
    for name in sorted(a):
        x, y = a[name].astype(np.float64), b[name].astype(np.float64)
        if x.shape != y.shape:
            print(f"{name}: shape {x.shape} vs {y.shape}", file=sys.stderr)
            return 1
        norm = np.linalg.norm(y)
        diff = np.linalg.norm(x - y)
        differences.append((diff / norm if norm > 0 else diff, name))
        diff_sq += diff * diff
        norm_sq += norm * norm
    differences.sort(reverse=True)
    worst = differences[0][0]
    whole = np.sqrt(diff_sq / norm_sq) if norm_sq > 0 else np.sqrt(diff_sq)
    identical = sum(1 for d, _ in differences if d == 0)
    print(f"{len(differences)} tensors, {identical} bit-identical; relative difference {whole:.3g} overall, "
          f"largest per tensor {worst:.3g} ({differences[0][1]})")
    for d, name in differences[1:3]:
        print(f"  then {d:.3g} ({name})")
    return 0 if (worst if args.per_tensor else whole) <= args.rtol else 1


if __name__ == "__main__":
    sys.exit(main())
