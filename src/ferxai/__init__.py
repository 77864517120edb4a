"""ferxai: how human-like are facial-expression-recognition networks?

Reproduces and extends Gaya-Morey et al. (2024): LIME explanations of FER networks, warped onto a
canonical face, averaged into global heatmaps and compared with Ekman/FACS ground-truth regions.
"""

__version__ = "0.1.0"


def load_trained(path, arch=None, network=None, **card):
    """A model trained elsewhere (state dict, TorchScript, torch.export, ONNX, Keras) behind
    ferxai's interface: (N, 3, H, W) RGB in [0, 1] → the six expressions' logits. ``arch``: a
    state dict's architecture (default ``network``, default the file's name); ``card``:
    input_size, class_order and, for whole models, channels, layout, scale, mean, std, output,
    runtime (:func:`ferxai.networks.loaders.load_trained`)."""
    from pathlib import Path

    from ferxai.models import load_trained as load
    from ferxai.networks.model_card import is_whole_model

    network = network or Path(path).stem
    if is_whole_model(path):
        if arch is not None:
            card["arch"] = arch  # refused there, with the reason
        return load(network, str(path), network=network, **card)
    size, order = card.pop("input_size", None), card.pop("class_order", None)
    return load(arch or network, str(path), size, order, network, **card)
