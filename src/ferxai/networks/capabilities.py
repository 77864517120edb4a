"""What a model offers and what each attribution method asks of it; checked without importing
torch. (Here, with the models, so that the networks' pre-flight check needs no later stage.)

* ``forward``: it only runs the model (LIME, KernelSHAP, occlusion, ablation, Shapley sampling,
  RISE): any model, ONNX Runtime included;
* ``gradients``: it differentiates the output with respect to the input (saliency, integrated
  gradients, ...): any torch module, TorchScript, torch.export and Keras included;
* ``layers``: it reads a convolutional layer's activations through a forward hook (Grad-CAM and
  the CAM family): modules whose layers run hooks (state dicts, onnx2torch, Keras);
* ``modules``: it replaces the backward of the model's ``nn.ReLU`` modules (guided backprop,
  deconvolution, DeepLIFT) or reads its conv/norm modules' biases (FullGrad): models built of torch
  layers (state dicts, onnx2torch).

A model's capabilities are :data:`ferxai.networks.loaders.CAPABILITIES`. Methods not listed here
are taken to need everything (the safe side).
"""

from __future__ import annotations

FORWARD = frozenset({"forward"})
GRADIENTS = frozenset({"forward", "gradients"})
LAYERS = frozenset({"forward", "gradients", "layers"})
MODULES = frozenset({"forward", "gradients", "layers", "modules"})

METHOD_NEEDS: dict[str, frozenset[str]] = {
    **dict.fromkeys(
        ("lime", "kernel_shap", "occlusion", "feature_ablation", "shapley_value_sampling", "rise"),
        FORWARD,
    ),
    **dict.fromkeys(
        ("saliency", "input_x_gradient", "integrated_gradients", "gradient_shap"), GRADIENTS
    ),
    **dict.fromkeys(
        (
            "gradcam",
            "gradcam_plusplus",
            "xgradcam",
            "eigengradcam",
            "layercam",
            "hirescam",
            "gradcam_elementwise",
        ),
        LAYERS,
    ),
    # activations only, no gradients, but still a hook on a layer
    **dict.fromkeys(("eigencam", "scorecam", "ablationcam"), frozenset({"forward", "layers"})),
    **dict.fromkeys(
        (
            "guided_backprop",
            "deconvolution",
            "deeplift",
            "deeplift_shap",
            "guided_gradcam",
            "fullgrad",
        ),
        MODULES,
    ),
}


def method_needs(method: str) -> frozenset[str]:
    """What ``method`` needs of a model (everything for a method this table does not know)."""
    return METHOD_NEEDS.get(method, MODULES)


def needs_torch(methods) -> bool:
    """True when one of ``methods`` needs more than forward passes (a torch module)."""
    return any(method_needs(m) - FORWARD for m in methods)


def methods_that_work(capabilities, methods=None) -> list[str]:
    """The methods (of ``methods``, default every known one) a model with ``capabilities`` runs."""
    pool = METHOD_NEEDS if methods is None else methods
    return [m for m in pool if method_needs(m) <= set(capabilities)]
