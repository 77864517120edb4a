"""ferxai: how human-like are facial-expression-recognition networks?

Reproduces and extends Gaya-Morey et al. (2024): LIME explanations of FER networks, warped onto a
canonical face, averaged into global heatmaps and compared with Ekman/FACS ground-truth regions.
"""

__version__ = "0.1.0"


def load_trained(path, **card):
    """A model trained elsewhere (state dict, TorchScript, torch.export, ONNX, Keras) behind
    ferxai's interface: (N, 3, H, W) RGB in [0, 1] → the six expressions' logits. See
    :func:`ferxai.networks.loaders.load_trained` for the card's keys."""
    from ferxai.networks.loaders import load_trained as load

    return load(path, **card)
