"""upload page: being built."""

import streamlit as st

st.title("Upload")
st.info("This view is not available yet.")
