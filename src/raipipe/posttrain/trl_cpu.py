"""Make TRL's fused LM head score only the answer tokens on CPU, as it already does on GPUs.

TRL's trainers (DPO, GRPO, SFT, ...) project hidden states through the LM head in tiles and, on
Triton devices, only at positions whose label counts (the answer tokens). Elsewhere TRL scores every
position, prompt and padding included, because a changing number of positions would recompile
kernels on compiled backends (Neuron). Eager CPU has no such cost, and on a small model the head is a
large share of the work (SmolLM2-135M: 49k-token vocabulary, ~21 % of a forward), so scoring the
prompt positions wastes time: measured on the default DPO pairs, 6 steps took 49.9 s with every
position and 31.3 s with answer positions only, with identical losses. The values computed at the
kept positions are the same either way; only the wasted rows are skipped."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)
_PATCH_FLAG = "_raipipe_compact_on_cpu"


def score_answers_only_on_cpu() -> bool:
    """Switch TRL's fused head to its compact (answer-positions-only) path for CPU tensors.

    Idempotent. Returns whether the switch is in effect; when a TRL version lacks the hook it logs a
    warning and leaves TRL as it is (training is then slower, not different)."""
    try:
        from trl.trainer import utils as trl_utils
    except ImportError:  # pragma: no cover - TRL is a hard dependency of posttrain
        return False
    original = getattr(trl_utils, "_use_triton", None)
    if original is None:
        log.warning("this TRL version has no trl.trainer.utils._use_triton: the LM head scores every position "
                    "on CPU (slower training, same results)")
        return False
    if getattr(original, _PATCH_FLAG, False):
        return True

    def compact_on_cpu(device) -> bool:
        # Only the position selection in add_fused_lm_head reads this name; the kernels module keeps its own
        # _use_triton, so CPU still runs the plain-PyTorch tiles.
        return device.type == "cpu" or original(device)

    setattr(compact_on_cpu, _PATCH_FLAG, True)
    trl_utils._use_triton = compact_on_cpu
    return True
