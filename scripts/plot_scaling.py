#!/usr/bin/python3
"""Scaling table and plot from a scaling study's runs.

    scripts/plot_scaling.py OUT_DIR [--warmup STEPS]

Reads OUT_DIR/runs.tsv (mode, ranks, threads, cores, batch_per_rank, oversubscribed, run_dir; written
by scripts/scaling_study.sh or slurm/scaling.sbatch) and each run's metrics.jsonl. Per run, over the
steps after the warm-up: samples/s (global batch / mean step time of the slowest rank), speedup over the
1-rank run of the same mode, efficiency (samples/s per core used, relative to the 1-rank run's), the gradient all-reduce time per step (posted to
done, overlapped with backward) and the part of it the optimizer waited for, and the bus bandwidth of a
blocking all-reduce of the gradient buffer (NCCL-tests' busbw). Writes OUT_DIR/scaling.md and
OUT_DIR/scaling.png.
"""
import argparse
import csv
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402


def summarise(run_dir, warmup):
    steps, bench = [], None
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            record = json.loads(line)
            if "allreduce_bench" in record:
                bench = record["allreduce_bench"]
            elif "step" in record and "step_s" in record:
                steps.append(record)
    if not steps:
        raise SystemExit(f"{run_dir}/metrics.jsonl: no steps")
    steady = steps[warmup:] if len(steps) > warmup else steps
    mean = lambda key, stat="max": sum(s[key][stat] for s in steady) / len(steady)  # noqa: E731
    step_s = mean("step_s")
    return {
        "steps": len(steady),
        "step_s": step_s,
        "compute_s": mean("compute_s", "mean"),
        "allreduce_s": mean("allreduce_s", "mean"),
        "allreduce_wait_s": mean("allreduce_wait_s", "mean"),
        "data_wait_s": mean("data_wait_s", "mean"),
        "imbalance": sum(s["imbalance"] for s in steady) / len(steady),
        "busbw_GBps": bench["busbw_GBps"] if bench else None,
        "grad_MB": bench["bytes"] / 1e6 if bench else None,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--warmup", type=int, default=3, help="steps left out at the start (default 3)")
    args = parser.parse_args()
    runs_tsv = os.path.join(args.out_dir, "runs.tsv")
    if not os.path.exists(runs_tsv):
        print(f"{runs_tsv}: no such file (run scripts/scaling_study.sh first)", file=sys.stderr)
        return 1
    rows = []
    with open(runs_tsv) as f:
        for run in csv.DictReader(f, delimiter="\t"):
            run_dir = run["run_dir"]
            if not os.path.isabs(run_dir) and not os.path.exists(run_dir):
                run_dir = os.path.join(args.out_dir, os.path.basename(run_dir))
            ranks, batch = int(run["ranks"]), int(run["batch_per_rank"])
            figures = summarise(run_dir, args.warmup)
            figures.update(mode=run["mode"], ranks=ranks, threads=int(run["threads"]), cores=int(run["cores"]),
                           batch=batch,
                           oversubscribed=run["oversubscribed"] == "yes",
                           samples_per_s=ranks * batch / figures["step_s"])
            rows.append(figures)
    for row in rows:
        base = [r for r in rows if r["mode"] == row["mode"] and r["ranks"] == 1]
        row["speedup"] = row["samples_per_s"] / base[0]["samples_per_s"] if base else None
        row["efficiency"] = (row["samples_per_s"] / row["cores"]) / (base[0]["samples_per_s"] / base[0]["cores"]) \
            if base else None

    lines = ["| mode | ranks × threads (cores) | frames/rank | samples/s | speedup | efficiency | step s | "
             "compute s | all-reduce s/step (waited) | busbw GB/s | imbalance |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["mode"], r["ranks"])):
        eff = f"{r['efficiency']:.2f}" if r["efficiency"] is not None else "–"
        speedup = f"{r['speedup']:.2f}" if r["speedup"] is not None else "–"
        bw = f"{r['busbw_GBps']:.2f}" if r["busbw_GBps"] is not None else "–"
        ar = f"{r['allreduce_s']:.4f} ({r['allreduce_wait_s']:.4f})" if r["ranks"] > 1 else "–"
        over = " (oversubscribed)" if r["oversubscribed"] else ""
        lines.append(f"| {r['mode']} | {r['ranks']} × {r['threads']} ({r['cores']}){over} | {r['batch']} | "
                     f"{r['samples_per_s']:.2f} | {speedup} | {eff} | {r['step_s']:.3f} | {r['compute_s']:.3f} | {ar} | {bw} | "
                     f"{r['imbalance']:.3f} |")
    grad = next((r["grad_MB"] for r in rows if r["grad_MB"]), None)
    lines.append("")
    lines.append(f"Means over each run's steps after the first {args.warmup}; gradient buffer "
                 f"{grad:.2f} MB." if grad else f"Means over each run's steps after the first {args.warmup}.")
    table = "\n".join(lines) + "\n"
    with open(os.path.join(args.out_dir, "scaling.md"), "w") as f:
        f.write(table)
    print(table, end="")

    fig, (ax_throughput, ax_efficiency, ax_busbw) = plt.subplots(1, 3, figsize=(15, 4))
    for mode, marker in (("strong", "o"), ("weak", "s")):
        mine = sorted((r for r in rows if r["mode"] == mode), key=lambda r: r["ranks"])
        if not mine:
            continue
        ranks = [r["ranks"] for r in mine]
        ax_throughput.plot(ranks, [r["samples_per_s"] for r in mine], marker=marker, label=mode)
        ax_efficiency.plot(ranks, [r["efficiency"] or 0 for r in mine], marker=marker, label=mode)
        # The all-reduce's bus bandwidth (none at 1 rank): what the interconnect (NVLink, InfiniBand) gives.
        with_bw = [r for r in mine if r["busbw_GBps"] is not None]
        ax_busbw.plot([r["ranks"] for r in with_bw], [r["busbw_GBps"] for r in with_bw], marker=marker, label=mode)
        for r in mine:
            if r["oversubscribed"]:
                ax_throughput.annotate("oversubscribed", (r["ranks"], r["samples_per_s"]), fontsize=7)
    for ax, label in ((ax_throughput, "samples/s"), (ax_efficiency, "efficiency (samples/s per core vs 1 rank)"),
                      (ax_busbw, "all-reduce bus bandwidth, GB/s")):
        ax.set_xlabel("ranks")
        ax.set_ylabel(label)
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted({r["ranks"] for r in rows}))
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.grid(True, alpha=0.3)
        ax.legend()
    ax_efficiency.set_ylim(0, max(1.2, max((r["efficiency"] or 0) for r in rows) * 1.1))
    fig.suptitle("lidartrain scaling")
    fig.tight_layout()
    fig.savefig(os.path.join(args.out_dir, "scaling.png"), dpi=100)
    return 0


if __name__ == "__main__":
    sys.exit(main())
