"""Compare two outputs of ``bench_fewshot.py`` on the same data set and seeds.

Prints, for each k and each skmeta row present in both, the mean and
worst-group balanced accuracy of the first output (A) and the second (B), and
B minus A in points. The baselines of the two outputs must agree (the same
data, folds and seeds), which the script checks.

Usage::

    python benchmarks/compare_fewshot.py A.md B.md [--methods "MAML (default),..."]
"""

import argparse
import pathlib
import sys

METHODS = ("MAML (default)", "ProtoNet (default)")
# Baselines that no tuning touches.
BASELINES = ("pooled LR", "pooled MLP", "LR shrunk to pooled")


def read_rows(path):
    """``{(k, method): (mean, worst)}`` from the held-out groups' table."""
    text = pathlib.Path(path).read_text()
    marker = "| k | groups | method | bal. acc., mean | bal. acc., worst group"
    if marker not in text:
        raise SystemExit(f"{path}: no held-out table (not a bench_fewshot output?)")
    lines = text[text.index(marker) :].splitlines()[2:]
    rows = {}
    for line in lines:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        k, method, mean, worst = int(cells[0]), cells[2], cells[3], cells[4]
        rows[k, method] = (float(mean.split(" ± ")[0]), float(worst.split(" ± ")[0]))
    command = next(
        (line for line in text.splitlines() if line.startswith("Command:")), "?"
    )
    return rows, command


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--methods", default=",".join(METHODS))
    args = parser.parse_args(argv)
    a, command_a = read_rows(args.a)
    b, command_b = read_rows(args.b)
    for key in a.keys() & b.keys():
        if key[1] in BASELINES and a[key] != b[key]:
            raise SystemExit(f"the baselines differ ({key}): not the same data")
    print(f"A: {command_a}\nB: {command_b}\n")
    print("| k | method | A mean | B mean | B - A | A worst | B worst | B - A |")
    print("|---|---|---|---|---|---|---|---|")
    for method in (m.strip() for m in args.methods.split(",")):
        for k in sorted({k for k, m in a.keys() & b.keys() if m == method}):
            (ma, wa), (mb, wb) = a[k, method], b[k, method]
            print(
                f"| {k} | {method} | {ma:.3f} | {mb:.3f} | {100 * (mb - ma):+.1f} "
                f"| {wa:.3f} | {wb:.3f} | {100 * (wb - wa):+.1f} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
