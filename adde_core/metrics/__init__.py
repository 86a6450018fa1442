"""Diversity metrics M_div as pure functions: Vendi, cluster entropy, coverage, MMD, cluster distances, representation.

Only numpy and scipy are imported here; scikit-learn and pandas are imported inside the functions that
use them, and torch, streamlit, umap and hdbscan are never imported.
"""

from adde_core.metrics.coverage import (
    convex_hull_area,
    hull_volume,
    knn_coverage,
    knn_coverage_mask,
    pca_hull_volume,
)
from adde_core.metrics.distances import max_intracluster_distance, min_intercluster_distance
from adde_core.metrics.entropy import ClusterEntropy, NoisePolicy, cluster_entropy, cluster_entropy_from_sizes
from adde_core.metrics.mmd import MMDResult, median_heuristic_bandwidth, mmd_rbf
from adde_core.metrics.representation import SubgroupRepresentation, subgroup_representation
from adde_core.metrics.vendi import (
    SubsampledVendi,
    quality_weighted_vendi_score,
    quality_weighted_vendi_score_from_kernel,
    vendi_score,
    vendi_score_from_eigenvalues,
    vendi_score_from_kernel,
    vendi_score_subsampled,
    vendi_scores_subsampled,
)

__all__ = [
    "ClusterEntropy",
    "MMDResult",
    "NoisePolicy",
    "SubgroupRepresentation",
    "SubsampledVendi",
    "cluster_entropy",
    "cluster_entropy_from_sizes",
    "convex_hull_area",
    "hull_volume",
    "knn_coverage",
    "knn_coverage_mask",
    "max_intracluster_distance",
    "median_heuristic_bandwidth",
    "min_intercluster_distance",
    "mmd_rbf",
    "pca_hull_volume",
    "quality_weighted_vendi_score",
    "quality_weighted_vendi_score_from_kernel",
    "subgroup_representation",
    "vendi_score",
    "vendi_score_from_eigenvalues",
    "vendi_score_from_kernel",
    "vendi_score_subsampled",
    "vendi_scores_subsampled",
]
