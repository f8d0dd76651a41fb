"""Answer generation from retrieved passages: extractive, local Hugging Face models, OpenAI-compatible servers."""
