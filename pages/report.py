"""report page: being built."""

import streamlit as st

st.title("Report")
st.info("This view is not available yet.")
