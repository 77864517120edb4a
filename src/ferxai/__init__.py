"""ferxai: how human-like are facial-expression-recognition networks?

Reproduces and extends Gaya-Morey et al. (2024): LIME explanations of FER networks, warped onto a
canonical face, averaged into global heatmaps and compared with Ekman/FACS ground-truth regions.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy, so that ``import ferxai`` (every CLI start) does not pull in numpy and scipy.
    if name == "localisation_scores":
        from ferxai.comparison.localisation_scores import localisation_scores

        return localisation_scores
    raise AttributeError(f"module 'ferxai' has no attribute {name!r}")
