"""2-D embeddings (t-SNE, UMAP, PCA) and before/after alignment."""

from vizcore.embed import methods  # noqa: F401  (fills the EMBEDDINGS registry)
