"""Write the ``manifest.json`` memento needs beside another model's ONNX export.

    python scripts/make_manifest.py DIR --name owner/model [--dimension N]
        [--max-seq-length 256] [--reference-python /path/to/torch-venv/bin/python]

DIR holds ``model.onnx`` (inputs ``input_ids``, ``attention_mask`` and optionally
``token_type_ids``; first output the last hidden state, mean-pooled by memento) and the
Hugging Face ``tokenizer.json``. The manifest records the model's name and dimension (read
from the ONNX output when not given) and the sha256 of both files, which memento checks on
every load. ``memento verify`` also wants golden sentences with reference vectors: with
``--reference-python`` (an interpreter that has sentence-transformers) they are computed
from the original model; without it the golden check reports that they are missing, and
everything else works.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from memento.embedder import sha256_file  # the digest memento checks on every load

GOLDEN_SENTENCES = [
    "I prefer dark mode in every editor.",
    "Run the tests with pytest -x before pushing.",
    "The staging database listens on port 5433.",
    "Deployed release 2.3 to production on Friday.",
]


def onnx_dimension(model: Path) -> int:
    from memento.embedder import import_onnxruntime

    ort = import_onnxruntime()
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    shape = session.get_outputs()[0].shape
    if not shape or not isinstance(shape[-1], int):
        raise SystemExit(f"cannot read the dimension from {model}: give --dimension")
    return int(shape[-1])


def reference_vectors(python: str, name: str) -> list[list[float]]:
    code = (
        "import json, sys\n"
        "from sentence_transformers import SentenceTransformer\n"
        "m = SentenceTransformer(sys.argv[1])\n"
        "v = m.encode(json.loads(sys.argv[2]), normalize_embeddings=True)\n"
        "print(json.dumps([[round(float(x), 7) for x in row] for row in v]))\n"
    )
    done = subprocess.run(
        [python, "-c", code, name, json.dumps(GOLDEN_SENTENCES)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--name", required=True, help="the model's name, e.g. owner/model")
    parser.add_argument("--dimension", type=int)
    parser.add_argument("--max-seq-length", type=int, default=256)
    parser.add_argument("--reference-python", help="an interpreter with sentence-transformers")
    args = parser.parse_args(argv)
    model, tokenizer = args.directory / "model.onnx", args.directory / "tokenizer.json"
    for path in (model, tokenizer):
        if not path.is_file():
            print(f"error: {path} is missing", file=sys.stderr)
            return 1
    manifest = {
        "name": args.name,
        "dimension": args.dimension or onnx_dimension(model),
        "max_seq_length": args.max_seq_length,
        "pooling": "mean",
        "normalized": True,
        "files": {"model.onnx": sha256_file(model), "tokenizer.json": sha256_file(tokenizer)},
    }
    if args.reference_python:
        manifest["golden"] = {
            "sentences": [
                {"text": text, "vector": vector}
                for text, vector in zip(
                    GOLDEN_SENTENCES, reference_vectors(args.reference_python, args.name)
                )
            ]
        }
    target = args.directory / "manifest.json"
    target.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
