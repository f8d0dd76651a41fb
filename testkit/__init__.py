"""Offline stand-ins for what a user brings, shared by the tests and the benchmarks: tiny Hugging Face
models made on the spot (``tiny_models``) and an OpenAI-compatible server that answers from a script
(``fake_llm_server``). Nothing in the application imports it."""
