"""ferxai: how human-like are facial-expression-recognition networks?

Reproduces and extends Gaya-Morey et al. (2024): LIME explanations of FER networks, warped onto a
canonical face, averaged into global heatmaps and compared with Ekman/FACS ground-truth regions.

The study's building blocks are plain functions of this package, for notebooks (docs/python-api.md
walks the whole study with them)::

    import ferxai
    model = ferxai.create_model("WeiNet", input_size=64)
    maps = ferxai.create_explainer("lime", model).attribute(images, target)

Each is imported on first use, so ``import ferxai`` stays light (no torch) and the workflow's code
versions do not see this table as imports (ferxai.core.code_version).
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# name -> the module that defines it ("module:attribute" where its name there differs), one stage
# package each, in the study's order
_API = {
    "EXPRESSIONS": "ferxai.core.constants",
    "synthetic_faces": "ferxai.data.synth",
    "create_model": "ferxai.networks",
    "load_trained": "ferxai.networks:load_model_file",
    "create_explainer": "ferxai.attribution",
    "landmarks_of": "ferxai.normalization.landmarks",
    "warp_to_canonical": "ferxai.normalization.warp",
    "global_heatmap": "ferxai.heatmaps.pooling",
    "ekman_masks": "ferxai.comparison.groundtruth",
    "compare_heatmaps": "ferxai.comparison.localisation",
    "localisation_scores": "ferxai.comparison.localisation_scores",
    "cluster_heatmaps": "ferxai.comparison.similarity",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'ferxai' has no attribute {name!r}")
    module, _, attribute = _API[name].partition(":")
    value = getattr(importlib.import_module(module), attribute or name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
