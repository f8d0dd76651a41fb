"""The base model and its adapters on disk: loading a causal LM to train, hashing it, merging an
adapter into it, and publishing output folders all at once.

Usage, with a base model folder and an adapter trained by ``rag finetune train``::

    merge_adapter(Path("Qwen2.5-0.5B-Instruct"), Path("my-lora"), Path("qwen-merged"))  # PosixPath('qwen-merged')
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rag.generate.hf import FALLBACK_TEMPLATE


class ModelError(RuntimeError):
    """A base model or adapter that cannot be used; the message is one line naming the folder and the reason."""


def check_causal_lm(base: Path) -> Any:
    """The config of the causal language model in ``base``; :class:`ModelError` for anything else."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if not (base / "config.json").is_file():
        raise ModelError(f"{base}: not a model folder (no config.json)")
    try:
        config = AutoConfig.from_pretrained(base, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{base}: cannot read the model config ({exc})") from exc
    architectures = getattr(config, "architectures", None) or []
    causal = (any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures) if architectures
              else config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)
    if not causal:
        kind = ", ".join(architectures or [config.model_type])
        raise ModelError(f"{base}: {kind} is not a causal language model; fine-tuning needs one (e.g. Qwen2.5-0.5B-Instruct)")
    return config


def load_tokenizer(base: Path) -> Any:
    """The base's tokenizer with a padding token and the chat template used for serving."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        tokenizer.chat_template = FALLBACK_TEMPLATE  # what HuggingFaceGenerator serves such a model with
    return tokenizer


def load_base(base: Path, four_bit: bool = False) -> Any:
    """The causal LM for training (``base`` already passed :func:`check_causal_lm`): bf16 on a GPU (fp16
    where bf16 is not supported), fp32 on the CPU, or a 4-bit (QLoRA) base with ``four_bit``."""
    import torch
    from transformers import AutoModelForCausalLM

    cuda = torch.cuda.is_available()
    half = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float16
    kwargs: dict[str, Any] = {"dtype": half if cuda else torch.float32}
    if four_bit:
        if not cuda or not importlib.util.find_spec("bitsandbytes"):
            raise ModelError("--4bit needs a CUDA GPU and the bitsandbytes package (pip install bitsandbytes)")
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                           bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=half)
        kwargs["device_map"] = {"": 0}
    try:
        model = AutoModelForCausalLM.from_pretrained(base, local_files_only=True, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{base}: cannot load the model ({exc})") from exc
    if four_bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
    return model


def folder_hash(folder: Path, patterns: tuple[str, ...] = ("config.json", "*.safetensors", "*.bin")) -> str:
    """SHA-256 over a model folder's config and weight files (names and contents), in name order."""
    digest = hashlib.sha256()
    for path in sorted(p for pattern in patterns for p in folder.glob(pattern)):
        digest.update(path.name.encode())
        with path.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


@contextmanager
def published(out: Path) -> Iterator[Path]:
    """A temporary folder beside ``out`` that becomes ``out`` only when the block succeeds; an
    interrupted or failed block leaves nothing at ``out``. ``out`` must not exist yet."""
    if out.exists():
        raise ModelError(f"{out}: already exists; choose another --out or remove it")
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(temporary, ignore_errors=True)
    try:
        temporary.mkdir()
        yield temporary
        os.rename(temporary, out)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def merge_adapter(base: Path, adapter: Path, out: Path) -> Path:
    """Fold ``adapter`` into ``base`` and write a plain model folder (weights, config, tokenizer) that
    transformers and vLLM load directly."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    check_causal_lm(base)
    if not (adapter / "adapter_config.json").is_file():
        raise ModelError(f"{adapter}: not a LoRA adapter folder (no adapter_config.json)")
    with published(out) as folder:
        model = AutoModelForCausalLM.from_pretrained(base, local_files_only=True, dtype="auto")
        try:
            model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelError(f"{adapter}: cannot apply it to {base} ({type(exc).__name__}: {exc})") from exc
        model.save_pretrained(folder)
        load_tokenizer(base).save_pretrained(folder)
    return out
