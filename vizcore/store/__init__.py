"""The run store: run folders written atomically, read with validation, and their cached results."""
