"""The Streamlit app (started by ``rag ui``): the knowledge base that the index at ``$RAG_INDEX`` holds."""
from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from rag.index import Index, IndexNotFoundError


def main() -> None:
    st.set_page_config(page_title="rag: your documents", layout="wide")
    index_dir = Path(os.environ.get("RAG_INDEX", "rag-index"))
    st.title("Your documents")
    try:
        index = Index.open(index_dir)
    except IndexNotFoundError as exc:
        st.info(str(exc))
        return
    manifest = index.manifest
    counts = manifest["counts"]
    left, middle, right = st.columns(3)
    left.metric("Files", counts["files"])
    middle.metric("Pages", counts["pages"])
    right.metric("Chunks", counts["chunks"])
    embedder = manifest["embedder"]
    st.caption(f"Index {index_dir} ({index.generation.name}), embedder {embedder['name']} ({embedder['dimension']} dimensions)")
    if manifest.get("unknown_token_share", 0) > 0.2:
        st.warning(
            f"{manifest['unknown_token_share']:.0%} of the indexed text is unknown to the embedder, so dense search "
            "is weak for it (Chinese under an English model); set RAG_EMBED_MODEL to a multilingual model."
        )
    st.dataframe(
        [
            {"file": f.path, "status": f.status, "pages": f.pages, "chunks": f.chunks,
             "ingested": f.ingested_at, "problem": f.error or ""}
            for f in index.files()
        ],
        use_container_width=True,
    )


main()
