"""Tiny models made offline for tests: a tokenizer trained on a few sentences, random-weight networks."""
from __future__ import annotations

from pathlib import Path
from typing import Any

SENTENCES = [
    "The lantern charges in ten hours under the sun.",
    "Warranty lasts two years and covers the battery.",
    "检索增强生成从文档中回答问题。",
    "晴川气象站每隔四十八秒发送一次数据。",
    "How long is the warranty of the solar lantern?",
]


def train_wordpiece(folder: Path) -> object:
    """A BERT-style fast tokenizer trained on ``SENTENCES`` and saved in ``folder``."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertTokenizerFast

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=300, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    tokenizer.train_from_iterator(SENTENCES * 3, trainer)
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    fast = BertTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                             sep_token="[SEP]", mask_token="[MASK]")
    fast.save_pretrained(folder)
    return fast


def make_cross_encoder(folder: Path) -> Path:
    """A random 1-layer BERT cross-encoder (one relevance logit) that ``CrossEncoder(folder)`` loads."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    tokenizer = train_wordpiece(folder)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, num_labels=1)
    BertForSequenceClassification(config).save_pretrained(folder)
    return folder


CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>{% endif %}")


def make_causal_lm(folder: Path, chat_template: bool = True, config: Any = None) -> Path:
    """A random 2-layer Llama (or a model of ``config``, in its dtype) with a byte-level BPE tokenizer
    (handles any script) trained on ``SENTENCES``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoModelForCausalLM, LlamaConfig, PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<pad>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(SENTENCES * 3, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>")
    if chat_template:
        fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(folder)
    torch.manual_seed(0)
    if config is None:
        config = LlamaConfig(vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096)
    config.bos_token_id, config.eos_token_id, config.pad_token_id = fast.bos_token_id, fast.eos_token_id, fast.pad_token_id
    AutoModelForCausalLM.from_config(config, dtype=getattr(config, "dtype", None) or torch.float32).save_pretrained(folder)
    return folder


def make_lora_adapter(model_dir: Path, folder: Path) -> Path:
    """A LoRA adapter on q/v projections with random (non-zero) weights, so it changes the outputs."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(model, config).save_pretrained(folder)
    return folder


def make_sentence_transformer(folder: Path) -> Path:
    """A random 1-layer BERT with mean pooling saved as a sentence-transformers model folder: thousands
    of chunks per second, for tests about ingest mechanics rather than retrieval quality."""
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel

    bert = folder / "bert"
    tokenizer = train_wordpiece(bert)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=512)).save_pretrained(bert)
    transformer = models.Transformer(str(bert), max_seq_length=256)
    SentenceTransformer(modules=[transformer, models.Pooling(32, "mean")]).save(str(folder / "model"))
    return folder / "model"
