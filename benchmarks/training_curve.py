"""Plot a `tec train` log (train_log.json): rate and distortion per logged window.

    .venv/bin/python benchmarks/training_curve.py runs/tec-fp-vbr-l1c/train_log.json --out docs/img/x.png

Variable-rate logs (a `--lambda` list) get one line per quality level, labelled with the levels'
lambdas; where a log joins runs whose levels had other lambdas (rows carry their own), a dashed
line marks the change and the legend gives both. The model card embeds these plots to show
that training did not diverge.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("log", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--title", default=None)
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = json.loads(args.log.read_text())["history"]
    steps = [row["step"] for row in history]
    fig, (ax_rate, ax_mse) = plt.subplots(1, 2, figsize=(10, 3.8))
    if history and "levels" in history[0]:
        sets = [tuple(lv["lambda"] for lv in row["levels"]) for row in history]
        changes = [steps[i] for i in range(1, len(sets)) if sets[i] != sets[i - 1]]
        for i in range(len(history[0]["levels"])):
            lams = list(dict.fromkeys(s[i] for s in sets))
            label = f"q{i + 1}: lambda " + " -> ".join(f"{v:g}" for v in lams)
            ax_rate.plot(steps, [row["levels"][i]["bpppb"] for row in history], label=label)
            ax_mse.plot(steps, [row["levels"][i]["mse"] for row in history], label=label)
        for step in changes:
            for ax in (ax_rate, ax_mse):
                ax.axvline(step, color="grey", linestyle="--", linewidth=0.8)
        ax_mse.legend(fontsize=8)
    else:
        ax_rate.plot(steps, [row["bpppb"] for row in history])
        ax_mse.plot(steps, [row["mse"] for row in history])
    ax_rate.set(xlabel="step", ylabel="rate (bpppb)", title="rate")
    ax_mse.set(xlabel="step", ylabel="MSE (normalised units)", title="distortion", yscale="log")
    if args.title:
        fig.suptitle(args.title)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
