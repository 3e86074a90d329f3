"""Opt-in reduced precision for CPU inference: dynamic int8 Linear layers.

On a CPU the fp32 ViT is compute bound near the machine's fp32 peak; int8 GEMMs (fbgemm / onednn)
roughly double Linear throughput. Weights are quantized per output channel once; activations are
quantized per batch at run time. The stem convolution, LayerNorms and attention softmax stay fp32.
Measure the drift for your data: ``benchmarks/bench_audio_encoder.py`` prints speed ratio and cosine.
"""
from __future__ import annotations

import copy
import warnings
from typing import Literal

from torch import nn

from .model import ModalityEncoder


def quantize_int8(encoder: ModalityEncoder, layers: Literal["all", "mlp"] = "all") -> ModalityEncoder:
    """A copy of ``encoder`` whose Linear layers run as dynamic int8 (CPU only, inference only).

    layers="mlp" keeps attention projections in fp32 (less drift, less speed-up).
    """
    if next(encoder.parameters()).device.type != "cpu":
        raise ValueError("int8 dynamic quantization runs on the CPU; move the encoder with .cpu() first "
                         "(on GPU use dtype=torch.bfloat16 instead)")
    if layers not in ("all", "mlp"):
        raise ValueError(f"layers={layers!r}: expected 'all' or 'mlp'")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization announces its move to torchao
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        model = copy.deepcopy(encoder).eval()
        if layers == "all":
            spec = {nn.Linear: per_channel_dynamic_qconfig}
        else:
            spec = {name: per_channel_dynamic_qconfig for name, m in model.named_modules()
                    if isinstance(m, nn.Linear) and ".mlp." in f".{name}."}
        return quantize_dynamic(model, spec, dtype=__import__("torch").qint8, inplace=True)
