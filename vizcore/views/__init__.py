"""Everything a page reads: per-run analysis, distance, embedding, explanation and transfer views, reports, exports, uploads."""
