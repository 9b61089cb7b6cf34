"""embeddings page: being built."""

import streamlit as st

st.title("Embeddings")
st.info("This view is not available yet.")
