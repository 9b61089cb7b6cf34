"""2-D embeddings (t-SNE, UMAP, PCA) and before/after alignment."""
