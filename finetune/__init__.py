"""Fine-tuning a local LLM on the user's own index, RAFT-style: training data (``examples``), LoRA training
(``train``), evaluation through the answer pipeline (``evaluate``) and merging (``model``).

    rag finetune data --index ./rag-index --out raft.jsonl
    rag finetune train --base ./Qwen2.5-0.5B-Instruct --data raft.jsonl --out ./my-lora
"""
