"""distances page: being built."""

import streamlit as st

st.title("Distances")
st.info("This view is not available yet.")
