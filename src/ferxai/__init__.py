"""ferxai: how human-like are facial-expression-recognition networks?

Reproduces and extends Gaya-Morey et al. (2024): LIME explanations of FER networks, warped onto a
canonical face, averaged into global heatmaps and compared with Ekman/FACS ground-truth regions.
"""

__version__ = "0.1.0"
