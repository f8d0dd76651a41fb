"""Turning files into index content: discovery, loaders, chunking and the incremental pipeline."""
