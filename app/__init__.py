"""The two faces of the application: the ``rag`` command line and the Streamlit UI."""
