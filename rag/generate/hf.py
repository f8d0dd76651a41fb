"""The local Hugging Face backend: a causal LM (optionally with a LoRA adapter), on the GPU when there is one.

Usage, with a model folder and a LoRA adapter on disk (``passages`` as :class:`rag.generate.prompt.Passage`)::

    generator = HuggingFaceGenerator.load("/models/Qwen2.5-1.5B-Instruct", adapter="/models/my-lora")
    "".join(generator.stream(GenerationRequest("How long is the warranty?", passages)))
"""
from __future__ import annotations

import importlib.util
import threading
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from rag.generate.base import GenerationError, GenerationRequest

FALLBACK_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


class HuggingFaceGenerator:
    """Greedy decoding with the model's chat template, streamed through ``TextIteratorStreamer``.

    On CUDA it loads in bfloat16 with ``device_map="auto"``; ``quantization`` ("4bit" or "8bit") needs
    bitsandbytes. An adapter is applied with peft, unmerged unless ``merge_adapter``.
    """

    name = "hf"

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.context_window = int(getattr(model.config, "max_position_embeddings", 4096))

    @classmethod
    def load(cls, model_dir: str, adapter: str | None = None, quantization: str | None = None,
             merge_adapter: bool = False) -> HuggingFaceGenerator:
        """Load once per process: the same arguments return the same loaded model."""
        return _load(model_dir, adapter, quantization, merge_adapter)

    @staticmethod
    def unload_all() -> None:
        """Forget every loaded model, so its memory can be freed before the next one loads."""
        import gc

        import torch

        _load.cache_clear()
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt(self, messages: list[dict[str, str]]) -> str:
        template = None if self.tokenizer.chat_template else FALLBACK_TEMPLATE
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, chat_template=template)

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        yield from self._generate(request.messages, request.max_new_tokens, request.stop)

    def complete(self, messages: list[dict[str, str]], max_new_tokens: int = 128) -> str:
        return "".join(self._generate(messages, max_new_tokens, threading.Event()))

    def _generate(self, messages: list[dict[str, str]], max_new_tokens: int, stop: threading.Event) -> Iterator[str]:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        class StopWhenSet(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
                return stop.is_set()

        inputs = self.tokenizer(self.prompt(messages), return_tensors="pt", add_special_tokens=False).to(self.model.device)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
        failure: list[BaseException] = []

        def run() -> None:
            try:
                with torch.inference_mode():
                    self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, streamer=streamer,
                                        stopping_criteria=StoppingCriteriaList([StopWhenSet()]),
                                        pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id)
            except BaseException as exc:  # surfaced to the reader below, not lost in the thread
                failure.append(exc)
                streamer.end()

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        for piece in streamer:
            if piece:
                yield piece
        worker.join()
        if failure:
            raise GenerationError(f"generation failed: {type(failure[0]).__name__}: {failure[0]}") from failure[0]


@lru_cache(maxsize=2)
def _load(model_dir: str, adapter: str | None, quantization: str | None, merge_adapter: bool) -> HuggingFaceGenerator:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cuda = torch.cuda.is_available()
    kwargs: dict[str, Any] = {"dtype": torch.bfloat16 if cuda else torch.float32}
    if cuda and importlib.util.find_spec("accelerate"):
        kwargs["device_map"] = "auto"
    if quantization:
        if quantization not in ("4bit", "8bit"):
            raise GenerationError(f"quantization {quantization!r}: use 4bit or 8bit")
        if not cuda or not importlib.util.find_spec("bitsandbytes"):
            raise GenerationError(f"{quantization} loading needs a CUDA GPU and the bitsandbytes package")
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=quantization == "4bit",
                                                           load_in_8bit=quantization == "8bit")
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        # The base model, the PeftModel around it or the merged model: each is a torch module.
        model: torch.nn.Module = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True, **kwargs)
    except (OSError, ValueError) as exc:
        raise GenerationError(f"cannot load a causal language model from {model_dir}: {exc}") from exc
    if adapter:
        from peft import PeftModel

        try:
            with_adapter = PeftModel.from_pretrained(model, adapter, is_trainable=False)
        except (OSError, ValueError) as exc:
            raise GenerationError(f"cannot load LoRA adapter {adapter}: {exc}") from exc
        model = with_adapter.merge_and_unload() if merge_adapter else with_adapter
    if not cuda or "device_map" not in kwargs:
        model = model.to("cuda" if cuda else "cpu")
    model.eval()
    return HuggingFaceGenerator(model, tokenizer)
