"""GPU fine-tuning throughput of `rag finetune train`'s own path (Trainer, peft LoRA on every linear layer,
bf16, gradient checkpointing) on random-weight Qwen2 models of real size, with generated RAFT-shaped data.

Reports per model: samples/s, tokens/s, peak GPU memory, and model FLOPs utilisation (MFU): tokens/s
times the training FLOPs per token, over the GPU's dense bf16 peak. With LoRA the frozen weights need
no weight gradients, so a token costs 4N (forward 2N, activation gradients 2N) for the N weights of the
matrix multiplications, plus 12·layers·seq·hidden for attention; recomputation under gradient
checkpointing is not counted (the usual model-FLOPs convention).

    PYTHONPATH=. .venv/bin/python bench/finetune_gpu.py                    # 0.5b and 1.5b, 30 steps each
    PYTHONPATH=. .venv/bin/python bench/finetune_gpu.py --configs 0.5b --batch-size 16 --seq-len 2048 --json out.json

Without CUDA it prints why and exits 0 (arguments are still checked: a bad one exits 2).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from finetune.examples import write_examples  # noqa: E402
from finetune.model import load_tokenizer  # noqa: E402
from finetune.train import TrainOptions, encode, train_adapter  # noqa: E402
from rag.generate.prompt import Passage, build_messages  # noqa: E402
from testkit.tiny_models import SENTENCES, make_causal_lm  # noqa: E402

QWEN2_VOCAB = 151_936
CONFIGS: dict[str, dict[str, Any]] = {
    # Qwen2-0.5B and Qwen2-1.5B (their config.json), random weights
    "0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2),
    "1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2),
    # for checking this script on the CPU
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2),
}
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "H800": 989.0, "A100": 312.0, "A800": 312.0, "L40S": 362.0,
                    "L40": 181.0, "L4": 121.0, "A10": 125.0, "4090": 165.0, "3090": 71.0}
"""Dense bf16 tensor-core peaks from the vendors' data sheets, by a part of the device name."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", default="0.5b,1.5b", help=f"comma-separated, of {', '.join(CONFIGS)}")
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps per model (the first --warmup are not timed)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed first steps (at least 1)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=1024, help="tokens per example (about)")
    parser.add_argument("--peak-tflops", type=float, help="the GPU's dense bf16 peak, when its name is not known here")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    unknown = [c for c in args.configs.split(",") if c not in CONFIGS]
    if unknown:
        parser.error(f"unknown config {unknown[0]!r}; choose from {', '.join(CONFIGS)}")
    if not 1 <= args.warmup < args.steps or args.batch_size < 1 or args.seq_len < 64:
        parser.error("need 1 <= --warmup < --steps, --batch-size >= 1 and --seq-len >= 64")
    return args


def qwen2_config(name: str) -> Any:
    import torch
    from transformers import Qwen2Config

    vocab = 512 if name == "tiny" else QWEN2_VOCAB
    config = Qwen2Config(vocab_size=vocab, max_position_embeddings=32_768, tie_word_embeddings=True, **CONFIGS[name])
    config.dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
    return config


def raft_examples(tokenizer: Any, count: int, seq_len: int) -> list[dict[str, Any]]:
    """``count`` examples of about ``seq_len`` tokens: five passages of filler sentences, a cited answer."""
    def example(i: int, repeat: int) -> dict[str, Any]:
        passages = [Passage(n, f"/docs/doc{n}.pdf", n, " ".join(SENTENCES[(i + n + j) % len(SENTENCES)] for j in range(repeat)))
                    for n in range(1, 6)]
        messages = build_messages(SENTENCES[i % len(SENTENCES)], passages)
        return {"split": "train", "oracle": None, "messages": messages + [{"role": "assistant", "content": f"{SENTENCES[1]} [2]"}]}

    per_repeat = len(encode(tokenizer, example(0, 2)["messages"])[0]) - len(encode(tokenizer, example(0, 1)["messages"])[0])
    fixed = len(encode(tokenizer, example(0, 1)["messages"])[0]) - per_repeat
    repeat = max(1, (seq_len - fixed) // max(per_repeat, 1))
    return [example(i, repeat) for i in range(count)]


def peak_tflops(device_name: str, given: float | None) -> float | None:
    return given or next((peak for part, peak in PEAK_BF16_TFLOPS.items() if part in device_name), None)


def measure(name: str, folder: Path, steps: int, warmup: int, batch_size: int, seq_len: int, peak: float | None) -> dict[str, Any]:
    """Train ``steps`` steps on model ``name`` through :func:`train_adapter` and time the steps after ``warmup``."""
    import torch

    config = qwen2_config(name)
    base = make_causal_lm(folder / f"base-{name}", config=config)
    tokenizer = load_tokenizer(base)
    examples = raft_examples(tokenizer, batch_size * steps, seq_len)
    lengths = [len(encode(tokenizer, e["messages"])[0]) for e in examples]
    tokens = sum(lengths) / len(lengths)
    write_examples(examples, folder / f"data-{name}.jsonl")
    times: dict[int, float] = {}

    def on_step(step: int, loss: float) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times[step] = time.perf_counter()

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    options = TrainOptions(max_steps=steps, batch_size=batch_size, grad_accum=1, save_steps=10**9, max_length=max(lengths))
    train_adapter(base, folder / f"data-{name}.jsonl", folder / f"adapter-{name}", options, on_step=on_step, show_progress=False)
    step_seconds = (times[steps] - times[warmup]) / (steps - warmup)
    tokens_per_s = batch_size * tokens / step_seconds
    shapes = _shapes(config)
    matmul = sum(p.numel() for n, p in shapes.items() if "embed_tokens" not in n) + config.vocab_size * config.hidden_size
    flops_per_token = 4 * matmul + 12 * config.num_hidden_layers * tokens * config.hidden_size
    return {
        "config": name, "parameters": sum(p.numel() for p in shapes.values()), "batch_size": batch_size,
        "tokens_per_example": round(tokens), "step_ms": round(step_seconds * 1000, 1),
        "samples_per_s": round(batch_size / step_seconds, 2), "tokens_per_s": round(tokens_per_s),
        "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None,
        "mfu": round(tokens_per_s * flops_per_token / (peak * 1e12), 4) if peak else None,
    }


def _shapes(config: Any) -> dict[str, Any]:
    """The model's parameters on the meta device (shapes only, no memory)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return dict(AutoModelForCausalLM.from_config(config).named_parameters())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("skipped: no CUDA device here; run bench/finetune_gpu.py on a GPU machine")
        return 0
    device = torch.cuda.get_device_name(0)
    peak = peak_tflops(device, args.peak_tflops)
    rows = []
    with tempfile.TemporaryDirectory(prefix="finetune-gpu-") as folder:
        for name in args.configs.split(","):
            rows.append(measure(name, Path(folder), args.steps, args.warmup, args.batch_size, args.seq_len, peak))
            print(json.dumps(rows[-1]), flush=True)
    print(f"\n{device}, bf16 peak {peak} TFLOPS; LoRA r=16 on all linear layers, gradient checkpointing")
    print("| model | params | batch x tokens | step ms | samples/s | tokens/s | peak GiB | MFU |\n|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| Qwen2-{r['config']} | {r['parameters'] / 1e9:.2f}B | {r['batch_size']} x {r['tokens_per_example']} | {r['step_ms']} | "
              f"{r['samples_per_s']} | {r['tokens_per_s']} | {r['peak_memory_gib']} | {r['mfu']} |")
    if args.json:
        args.json.write_text(json.dumps({"device": device, "peak_tflops": peak, "rows": rows}, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
