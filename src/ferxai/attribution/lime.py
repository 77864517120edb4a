"""LIME for images, numerically identical to ``lime.lime_image.LimeImageExplainer`` (lime 0.2.0.1).

lime builds every perturbed image with numpy on the CPU and calls the network on batches of 10.
Here the perturbations are built on the model's device (with numpy on the CPU) from the segment
map and the binary matrix, several images share each forward batch, and the weighted ridge of all
images is solved in closed form at once. The arithmetic is lime's: same SLIC call, same
``RandomState`` draws, cosine distance to the all-ones vector, kernel ``sqrt(exp(-d² / w²))`` and
``Ridge(alpha=1)`` with intercept on all superpixels for the target class
(``num_features=100000`` selects them all).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch

from ferxai.attribution.common import (
    ProgressLog,
    auto_batch_size,
    keep_sign,
    log,
    model_device,
    slic_segments,
    softmax_forward,
    to_hwc_numpy,
)
from ferxai.attribution.settings import resolve_settings
from ferxai.core.device import resolve_precision

RIDGE_ALPHA = 1.0  # lime_base.LimeBase: Ridge(alpha=1, fit_intercept=True)


@dataclass
class Explanation:
    """Maps (N, H, W) float32 on the CPU, plus what produced them when the method has segments."""

    maps: torch.Tensor
    segments: torch.Tensor | None = None
    segment_weights: list[np.ndarray] | None = None  # signed ridge coefficients per superpixel
    intercepts: np.ndarray | None = None


def sample_perturbations(seed: int, num_samples: int, n_features: int) -> np.ndarray:
    """lime's neighbourhood: ``RandomState(seed).randint(0, 2, S*F)`` as (S, F), first row all ones."""
    rng = np.random.RandomState(seed)
    data = rng.randint(0, 2, num_samples * n_features).reshape((num_samples, n_features))
    data[0, :] = 1
    return data


def kernel_weights(
    active: torch.Tensor, n_features: torch.Tensor, kernel_width: float
) -> torch.Tensor:
    """Kernel of the cosine distance between each binary vector and the all-ones vector.

    For a binary z with k ones among F features, cos(z, 1) = k / (sqrt(k) sqrt(F)) = sqrt(k / F);
    an all-zeros z has cosine similarity 0 (sklearn's convention), which the formula also gives.
    """
    distance = 1.0 - torch.sqrt(active / n_features[:, None])
    return torch.sqrt(torch.exp(-(distance**2) / kernel_width**2))


def weighted_ridge(
    features: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, alpha: float = RIDGE_ALPHA
) -> tuple[torch.Tensor, torch.Tensor]:
    """sklearn's ``Ridge(alpha, fit_intercept=True).fit(X, y, sample_weight=w)``, batched.

    ``features`` (B, S, F), ``targets`` and ``weights`` (B, S), float64. Centring by the weighted
    means and solving (Xcᵀ W Xc + αI) β = Xcᵀ W yc is what sklearn does; all-zero padding columns
    get β = 0 exactly, so images with different superpixel counts share one solve.
    """
    total = weights.sum(dim=1, keepdim=True)
    x_mean = (weights[..., None] * features).sum(dim=1) / total
    y_mean = (weights * targets).sum(dim=1, keepdim=True) / total
    centred = features - x_mean[:, None, :]
    weighted = centred * weights[..., None]
    gram = weighted.transpose(1, 2) @ centred
    gram = gram + alpha * torch.eye(gram.shape[-1], dtype=gram.dtype)
    rhs = weighted.transpose(1, 2) @ (targets - y_mean)[..., None]
    coef = torch.linalg.solve(gram, rhs)[..., 0]
    intercept = y_mean[:, 0] - (x_mean * coef).sum(dim=1)
    return coef, intercept


class LimeExplainer:
    """``create_explainer('lime', model, **settings).attribute(images, target)``."""

    method = "lime"

    def __init__(self, model: torch.nn.Module, **settings) -> None:
        self.settings = resolve_settings("lime", settings)
        self.model = model.eval()
        self.device = model_device(model)
        self.precision = resolve_precision(self.settings["precision"], self.device)
        self.forward = softmax_forward(self.model, self.precision)
        # on the CPU in fp32 the forward path is chosen on the first images (ferxai.networks.forward)
        self.cpu_path_pending = self.device.type == "cpu" and self.precision == "fp32"
        self.forward_record: dict | None = None

    def attribute(
        self, images: torch.Tensor, target: torch.Tensor, seeds: Sequence[int] | None = None
    ) -> torch.Tensor:
        return self.explain(images, target, seeds).maps

    def explain(
        self,
        images: torch.Tensor,
        target: torch.Tensor,
        seeds: Sequence[int] | None = None,
        segments: Sequence[np.ndarray] | None = None,
    ) -> Explanation:
        """Explain ``images`` (N, 3, H, W) in [0, 1] for classes ``target`` (N,).

        ``seeds[i]`` draws image i's perturbations (default ``seed + i``), so a result never
        depends on how images were batched. ``segments`` may be given (N arrays H×W, labels 0..F-1)
        to skip SLIC.
        """
        n_images = images.shape[0]
        seeds = _default_seeds(self.settings["seed"], n_images, seeds)
        target = torch.as_tensor(target, dtype=torch.long).reshape(n_images)
        num_samples = self.settings["num_samples"]
        batch_size = self.batch_size_for(images, num_samples * n_images)
        if self.cpu_path_pending and n_images:
            self.plan_forward(images, n_images * num_samples, batch_size)
        # Enough images per group to fill a forward batch: small models see several images at once.
        group = max(1, math.ceil(batch_size / num_samples))
        progress = ProgressLog("lime", n_images)
        results: list[Explanation] = []
        with ThreadPoolExecutor(max_workers=2) as pool:
            pending = self._segment_async(pool, images, segments)
            for start in range(0, n_images, group):
                stop = min(start + group, n_images)
                group_segments = [pending[i].result() for i in range(start, stop)]
                results.append(
                    self._explain_group(
                        images[start:stop], target[start:stop], seeds[start:stop],
                        group_segments, batch_size,
                    )
                )
                progress.update(stop - start, (stop - start) * num_samples)
        log.info("%s (batch %d, %s)", progress.summary(), batch_size, self.precision)
        return _concatenate(results, images.shape[-2:])

    def plan_forward(self, images: torch.Tensor, expected_images: int,
                     batch_size: int | None = None) -> dict | None:
        """Choose the CPU forward path now (fp32 on the CPU; else nothing to choose): checked on
        LIME-like perturbations of ``images``, ``cpu_forward: auto`` weighing an export against
        ``expected_images`` forward passes. The attribution job calls it with the first images
        and size of the whole stack, so a resumed job makes the same choice; otherwise the first
        :meth:`explain` call does, with its own. Returns the record (also ``forward_record``)."""
        from ferxai.networks.forward import perturbed_examples, select_forward

        if not self.cpu_path_pending:
            return self.forward_record
        batch_size = batch_size or self.batch_size_for(images)
        example = perturbed_examples(images, min(batch_size, expected_images),
                                     self.settings["seed"], self.settings["hide_color"])
        path = select_forward(self.model, example, self.settings["cpu_forward"], expected_images)
        self.forward = softmax_forward(self.model, self.precision, logits_fn=path.forward)
        self.forward_record, self.cpu_path_pending = path.record, False
        return self.forward_record

    def batch_size_for(self, images: torch.Tensor, expected_images: int | None = None) -> int:
        """The forward batch: the ``batch_size`` setting, else a pixel budget on the CPU (a rule:
        the same on every run) or a memory probe on a GPU."""
        limit = expected_images or self.settings["num_samples"] * len(images)
        return self.settings["batch_size"] or auto_batch_size(
            self.forward, tuple(images.shape[1:]), self.device, limit
        )

    def _segment_async(
        self,
        pool: ThreadPoolExecutor,
        images: torch.Tensor,
        segments: Sequence[np.ndarray] | None,
    ) -> list[Future]:
        """SLIC on CPU threads, started for every image now so it overlaps the forward passes."""
        if segments is not None:
            done = []
            for seg in segments:
                future: Future = Future()
                future.set_result(np.asarray(seg, dtype=np.int64))
                done.append(future)
            return done
        n_segments, compactness = self.settings["n_segments"], self.settings["compactness"]
        return [
            pool.submit(slic_segments, to_hwc_numpy(image), n_segments, compactness)
            for image in images
        ]

    def _explain_group(
        self,
        images: torch.Tensor,
        target: torch.Tensor,
        seeds: Sequence[int],
        segments: list[np.ndarray],
        batch_size: int,
    ) -> Explanation:
        masks, n_features = self._masks(seeds, segments)
        segment_map = torch.from_numpy(np.stack(segments))
        probabilities = self._target_probabilities(images, target, segment_map, masks, batch_size)

        with _one_thread():  # (G, S, F) float64: tiny; parallel BLAS only waits for cores
            masks_cpu = torch.from_numpy(masks)
            counts = torch.tensor(n_features, dtype=torch.float64)
            weights = kernel_weights(masks_cpu.sum(dim=2), counts, self.settings["kernel_width"])
            coef, intercept = weighted_ridge(masks_cpu, probabilities, weights)
            painted = torch.gather(coef, 1, segment_map.flatten(1)).view(segment_map.shape)
        return Explanation(
            maps=keep_sign(painted, self.settings["keep"]).float(),
            segments=segment_map,
            segment_weights=[c[:k].numpy() for c, k in zip(coef, n_features)],
            intercepts=intercept.numpy(),
        )

    def _masks(
        self, seeds: Sequence[int], segments: Sequence[np.ndarray]
    ) -> tuple[np.ndarray, list[int]]:
        """lime's binary rows of every image, zero-padded to the widest: (G, S, F) float64."""
        num_samples = self.settings["num_samples"]
        n_features = [int(seg.max()) + 1 for seg in segments]
        masks = np.zeros((len(segments), num_samples, max(n_features)), dtype=np.float64)
        for i, (seed, count) in enumerate(zip(seeds, n_features)):
            masks[i, :, :count] = sample_perturbations(seed, num_samples, count)
        return masks, n_features

    def perturbed_batches(
        self,
        images: torch.Tensor,
        segments: torch.Tensor,
        masks: np.ndarray,
        batch_size: int,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The forward batches of a group: ``(flat, batch)``, ``flat`` the rows' indices in
        (image, sample) order and ``batch`` their perturbed images on the model's device.

        The perturbation rows of all images in the group are laid end to end and cut into forward
        batches; each batch is assembled on the device by gathering the binary row at every
        pixel's superpixel: ``keep = row[segments]``, ``where(keep, image, hide_color)``. On the
        CPU that is numpy, on one thread: torch's OpenMP workers would otherwise spin after it,
        on the cores the forward pass (ONNX Runtime's threads) needs.
        """
        device = self.device
        n_images, num_samples = masks.shape[:2]
        if device.type == "cpu":
            yield from _perturbed_batches_numpy(images, segments, masks, batch_size,
                                                float(self.settings["hide_color"]))
            return
        images = images.to(device, torch.float32)
        segments = segments.to(device).flatten(1)
        rows_on = torch.from_numpy(masks).to(device=device, dtype=torch.bool)
        hide = torch.tensor(float(self.settings["hide_color"]), device=device)
        total = n_images * num_samples
        for start in range(0, total, batch_size):
            flat = torch.arange(start, min(start + batch_size, total), device=device)
            image_index, row_index = flat // num_samples, flat % num_samples
            keep = torch.gather(rows_on[image_index, row_index], 1, segments[image_index])
            keep = keep.view(-1, 1, *images.shape[-2:])
            yield flat, torch.where(keep, images[image_index], hide)

    @torch.inference_mode()
    def _target_probabilities(
        self,
        images: torch.Tensor,
        target: torch.Tensor,
        segments: torch.Tensor,
        masks: np.ndarray,
        batch_size: int,
    ) -> torch.Tensor:
        """Softmax probability of the target class for every perturbation, (G, S) float64."""
        n_images, num_samples = masks.shape[:2]
        targets = target.to(self.device)
        out = torch.empty(n_images * num_samples, dtype=torch.float64, device=self.device)
        for flat, batch in self.perturbed_batches(images, segments, masks, batch_size):
            probs = self.forward(batch)
            rows = torch.arange(len(flat), device=self.device)
            out[flat] = probs[rows, targets[flat // num_samples]].double()
        return out.view(n_images, num_samples).cpu()


@contextmanager
def _one_thread() -> Iterator[None]:
    """torch on one thread for a moment: the ridge of a group is a few (S x F) float64 products,
    which two threads only slow down (MKL wakes its workers; 0.24 vs 0.7-10 ms per group on 2
    shared cores, measured for issue 17)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _perturbed_batches_numpy(
    images: torch.Tensor, segments: torch.Tensor, masks: np.ndarray, batch_size: int, hide: float
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """:meth:`LimeExplainer.perturbed_batches` on the CPU, with numpy (same values: a selection)."""
    n_images, num_samples = masks.shape[:2]
    height, width = images.shape[-2:]
    pixels = images.detach().to("cpu", torch.float32).contiguous().numpy()
    segment_map = segments.cpu().flatten(1).numpy()
    rows_on = masks.astype(bool)
    hide_value = np.float32(hide)
    total = n_images * num_samples
    for start in range(0, total, batch_size):
        flat = np.arange(start, min(start + batch_size, total))
        image_index, row_index = flat // num_samples, flat % num_samples
        keep = np.take_along_axis(rows_on[image_index, row_index], segment_map[image_index], 1)
        batch = np.where(keep.reshape(-1, 1, height, width), pixels[image_index], hide_value)
        yield torch.from_numpy(flat), torch.from_numpy(batch)


def _default_seeds(seed: int, count: int, seeds: Sequence[int] | None) -> list[int]:
    if seeds is None:
        return [seed + i for i in range(count)]
    seeds = [int(s) for s in seeds]
    if len(seeds) != count:
        raise ValueError(f"{len(seeds)} seeds for {count} images")
    return seeds


def _concatenate(parts: list[Explanation], size: Sequence[int]) -> Explanation:
    if not parts:
        empty = torch.zeros((0, *size))
        return Explanation(empty, torch.zeros((0, *size), dtype=torch.long), [], np.zeros(0))
    return Explanation(
        maps=torch.cat([p.maps for p in parts]),
        segments=torch.cat([p.segments for p in parts]),
        segment_weights=[w for p in parts for w in p.segment_weights],
        intercepts=np.concatenate([p.intercepts for p in parts]),
    )
