"""MiDashengLM-shaped decoders: batched generation against one request at a time, and time
to first token, side by side in one run.

Random weights at the decoder shapes of MiDashengLM-0.6B (Qwen3-0.6B: 28 layers, hidden
1024, 16 heads, 8 KV heads) and MiDashengLM-7B (the Qwen2.5-Omni-7B thinker: 28 layers,
hidden 3584, 28 heads, 4 KV heads), fed a prompt as long as the service sends for a 10 s clip
(50 audio tokens plus the chat template's text, about 90 tokens). Generation is forced to
`--new-tokens` tokens (random weights would stop anywhere). Printed per shape and batch size:
generated tokens per second batched, the same requests one at a time, their ratio, and the
time to the first token of a batch.

A GPU run (a machine with PyTorch 2.11 and CUDA 13, and this repository's pinned transformers
and its dependencies installed; `scripts/bench-gpu` runs it with the tagger benchmark):
    python bench/bench_decoders.py --device cuda --dtype bfloat16
`--smoke` runs tiny shapes on any machine (the tests do, to keep this script working).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
import time
from typing import Any

PROMPT_TOKENS = 90


@dataclass(frozen=True)
class Shape:
    """A decoder's size."""

    name: str
    model_type: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int = 151936


SHAPES = (
    Shape("midashenglm-0.6b (qwen3)", "qwen3", 28, 1024, 16, 8, 3072),
    Shape("midashenglm-7b (qwen2)", "qwen2", 28, 3584, 28, 4, 18944),
)
SMOKE = (
    Shape("smoke qwen3", "qwen3", 2, 64, 4, 2, 128, vocab=512),
    Shape("smoke qwen2", "qwen2", 2, 64, 4, 2, 128, vocab=512),
)


def build(shape: Shape, device: str, dtype: Any) -> Any:
    """A randomly initialised causal LM of that shape."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    extra = {"head_dim": shape.hidden // shape.heads} if shape.model_type == "qwen3" else {}
    config = AutoConfig.for_model(
        shape.model_type,
        num_hidden_layers=shape.layers,
        hidden_size=shape.hidden,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.kv_heads,
        intermediate_size=shape.intermediate,
        vocab_size=shape.vocab,
        max_position_embeddings=4096,
        **extra,
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    return model.eval()


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def generate(model: Any, batch: int, new_tokens: int, device: str) -> float:
    """Seconds to generate `new_tokens` for `batch` prompts together."""
    import torch

    ids = torch.randint(10, model.config.vocab_size - 10, (batch, PROMPT_TOKENS), device=device)
    mask = torch.ones_like(ids)
    _sync(device)
    started = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            pad_token_id=0,
        )
    _sync(device)
    assert out.shape == (batch, PROMPT_TOKENS + new_tokens)
    return time.perf_counter() - started


def measure(
    shape: Shape, batches: list[int], new_tokens: int, device: str, dtype: Any, singles: int
) -> list[str]:
    """Table rows for one shape.

    One request at a time runs at the same rate whatever the batch it is compared with, so
    it is measured once per shape (the fastest of `singles` requests in a row, the baseline's
    best case), and every row's ratio divides by that rate. Batches take the best of two.
    """
    model = build(shape, device, dtype)
    for batch in (1, max(batches)):  # warm-up: kernels, allocator and clocks
        generate(model, batch, new_tokens, device)
    single = min(generate(model, 1, new_tokens, device) for _ in range(singles))
    single_rate = new_tokens / single
    rows = []
    for batch in batches:
        together = min(generate(model, batch, new_tokens, device) for _ in range(2))
        first_token = min(generate(model, batch, 1, device) for _ in range(2))
        rate = batch * new_tokens / together
        rows.append(
            f"| {shape.name} | {batch} | {rate:.0f} | {single_rate:.0f} | "
            f"{rate / single_rate:.1f}x | {first_token * 1000:.0f} |"
        )
    del model
    return rows


def main(argv: list[str] | None = None) -> list[str]:
    """Run every shape and print (and return) the table."""
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--batches", default="1,8,64")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument(
        "--singles", type=int, default=4, help="requests run one at a time for the baseline"
    )
    parser.add_argument("--smoke", action="store_true", help="tiny shapes, any machine")
    args = parser.parse_args(argv)
    dtype = getattr(torch, args.dtype)
    device_name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "CPU"
    lines = [
        f"# decoders, random weights, {PROMPT_TOKENS}-token prompts, {args.new_tokens} new "
        f"tokens, {device_name}, {args.dtype}, torch {torch.__version__}",
        "| decoder | batch | tokens/s batched | tokens/s one at a time | ratio | time to first "
        "token of the batch (ms) |",
        "|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    batches = [int(b) for b in args.batches.split(",")]
    for shape in SMOKE if args.smoke else SHAPES:
        rows = measure(shape, batches, args.new_tokens, args.device, dtype, args.singles)
        print("\n".join(rows), flush=True)
        lines.extend(rows)
    return lines


if __name__ == "__main__":
    main()
