#!/usr/bin/env python3
"""Classify images with a pcann model file.

    python scripts/predict.py results/runs/train-only/pca2/<run>/model.npz photos/ apple.png
    python scripts/predict.py MODEL FOLDER --output predictions.csv --markdown report.md

Writes one CSV row per image (image, true_class, predicted_class, p_<class>...) to --output, or
to stdout. Images in sub-folders named like the training classes count as labelled: accuracy,
confusion matrix and per-class precision and recall then go to --markdown / --json and, in
short, to stderr. Every image is scaled with the training statistics stored in the model file.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pcann import PcannError  # noqa: E402
from pcann.model.model_file import load  # noqa: E402
from pcann.model.prediction import classify, write_outputs  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="predict.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("model", help="a model file (results/runs/.../model.npz)")
    parser.add_argument("paths", nargs="+", help="image files or folders (searched recursively)")
    parser.add_argument("-o", "--output", help="predictions CSV (default: stdout)")
    parser.add_argument("--markdown", help="also write accuracy, confusion matrix, per-class table")
    parser.add_argument("--json", help="also write the same as JSON")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        model = load(args.model)
        result = classify(model, args.paths)
        with tempfile.TemporaryDirectory() as tmp:
            output = args.output or str(Path(tmp) / "predictions.csv")
            record = write_outputs(model, result, output, args.markdown, args.json,
                                   source=", ".join(args.paths))
            if not args.output:
                sys.stdout.write(Path(output).read_text())
    except PcannError as exc:
        print(f"predict.py: error: {exc}", file=sys.stderr)
        return 1
    print(f"predict.py: {record['n_images']} images classified with {args.model}", file=sys.stderr)
    if "accuracy" in record:
        print(f"predict.py: accuracy {record['accuracy']:.4f} over the {record['n_labelled']} "
              "images in class folders", file=sys.stderr)
    if record["protocol"] == "study":
        print(f"predict.py: note: {model.protocol_note}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
