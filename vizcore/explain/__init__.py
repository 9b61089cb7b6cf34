"""Explanation methods (CAM, the Grad-CAM family, Score-CAM, Eigen-CAM) and their faithfulness scores."""
