"""Write a llama-architecture GGUF with random weights and the default model's tokenizer.

For speed measurements where a real model cannot travel (the GPU machine reaches no network,
and the default model is too big for its file transfer): the weights are noise, the shapes
and the tokenizer are real, so decode costs what the real model's would. Needs the ``gguf``
package (``pip install gguf``; also vendored in the llama-cpp-python sdist as gguf-py).

    python benchmarks/synthetic_gguf.py --shape smollm2-1.7b --out /tmp/synthetic-1.7b.gguf
    python benchmarks/bench_batching.py --model /tmp/synthetic-1.7b.gguf --no-prefix-cache --no-fairness

The text such a model writes is noise too, so it rarely stops early: a benchmark's samples
run their whole token budget.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sfdsl.models import resolve_model_path


@dataclass(frozen=True)
class Shape:
    layers: int
    dim: int
    ffn: int
    heads: int
    kv_heads: int


SHAPES = {  # from the models' config.json files on the Hugging Face hub; all use SmolLM2's tokenizer
    "smollm2-135m": Shape(layers=30, dim=576, ffn=1536, heads=9, kv_heads=3),
    "smollm2-360m": Shape(layers=32, dim=960, ffn=2560, heads=15, kv_heads=5),
    "smollm2-1.7b": Shape(layers=24, dim=2048, ffn=8192, heads=32, kv_heads=32),
    "tiny": Shape(layers=2, dim=64, ffn=128, heads=4, kv_heads=2),  # for checking this script
}
TOKENIZER_PREFIX = "tokenizer."


def write(out: Path, shape: Shape, *, seed: int = 0, context: int = 8192) -> int:
    """Write the model; its parameter count."""
    import gguf

    source = gguf.GGUFReader(str(resolve_model_path("default")))
    vocab = len(source.fields["tokenizer.ggml.tokens"].data)
    writer = gguf.GGUFWriter(str(out), arch="llama")
    writer.add_name(f"synthetic {shape}")
    writer.add_context_length(context)
    writer.add_embedding_length(shape.dim)
    writer.add_block_count(shape.layers)
    writer.add_feed_forward_length(shape.ffn)
    writer.add_head_count(shape.heads)
    writer.add_head_count_kv(shape.kv_heads)
    writer.add_rope_dimension_count(shape.dim // shape.heads)
    writer.add_rope_freq_base(100000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(vocab)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    for key, field in source.fields.items():
        if key.startswith(TOKENIZER_PREFIX):
            sub = field.types[1] if len(field.types) > 1 else None
            writer.add_key_value(key, field.contents(), field.types[0], sub)
    rng = np.random.default_rng(seed)
    head_dim = shape.dim // shape.heads
    kv_dim = head_dim * shape.kv_heads
    params = 0

    def add(name: str, rows: int, cols: int) -> None:  # numpy shape (rows, cols) = GGUF ne (cols, rows)
        nonlocal params
        weight = (rng.standard_normal((rows, cols), dtype=np.float32) * 0.02).astype(np.float16)
        writer.add_tensor(name, weight)
        params += rows * cols

    def norm(name: str) -> None:
        writer.add_tensor(name, np.ones(shape.dim, dtype=np.float32))

    add("token_embd.weight", vocab, shape.dim)  # tied: also the output projection
    norm("output_norm.weight")
    for i in range(shape.layers):
        norm(f"blk.{i}.attn_norm.weight")
        add(f"blk.{i}.attn_q.weight", shape.dim, shape.dim)
        add(f"blk.{i}.attn_k.weight", kv_dim, shape.dim)
        add(f"blk.{i}.attn_v.weight", kv_dim, shape.dim)
        add(f"blk.{i}.attn_output.weight", shape.dim, shape.dim)
        norm(f"blk.{i}.ffn_norm.weight")
        add(f"blk.{i}.ffn_gate.weight", shape.ffn, shape.dim)
        add(f"blk.{i}.ffn_up.weight", shape.ffn, shape.dim)
        add(f"blk.{i}.ffn_down.weight", shape.dim, shape.ffn)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="smollm2-1.7b")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    params = write(args.out, SHAPES[args.shape], seed=args.seed)
    print(f"wrote {args.out}: {args.shape} shapes, {params / 1e6:.0f}M parameters in f16, "
          f"{args.out.stat().st_size / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
