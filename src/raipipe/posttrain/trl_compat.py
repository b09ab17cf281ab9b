"""Every place raipipe leans on TRL's private internals, in one module, applied explicitly by the trainers.

TRL changes private names between minor releases without notice. Kept here, each workaround names the
internal it depends on (`PATCHED_INTERNALS`), checks it exists before use, and tests/test_trl_compat.py
fails when a TRL upgrade moves one, instead of training silently going slower or different.

- `cpu_compact_head`: TRL's fused LM head scores only answer positions on Triton devices and every
  position elsewhere (so compiled backends do not recompile). Eager CPU has no such cost and the head is
  a large share of a small model's work (SmolLM2-135M, 49k vocabulary, ~21 % of a forward): on the
  default DPO pairs 6 steps took 49.9 s scoring every position, 31.3 s answer positions only, same losses.
- `answer_capped`: keep every prompt whole and cut answers to N tokens after TRL tokenises (cutting
  text and re-templating would append an end-of-turn and teach the model to stop mid-sentence).
- `prompt_sharing`: run each pair's prompt once for both answers (see `shared_prompt`).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from packaging.version import Version

from raipipe.posttrain.shared_prompt import sharing_prompts

log = logging.getLogger(__name__)

SUPPORTED = ("1.0", "2.0")  # TRL versions the workarounds are written for: >= first, < second
TESTED_UP_TO = "1.16"  # newest TRL minor release the workarounds were checked against
# (module or class, attribute) pairs the workarounds read or override; the test asserts each still exists.
PATCHED_INTERNALS: tuple[tuple[str, str], ...] = (
    ("trl.trainer.utils", "_use_triton"),
    ("trl.trainer.utils", "add_fused_lm_head"),
    ("trl.trainer.utils", "get_callable_name"),
    ("trl.DPOTrainer", "_prepare_dataset"),
    ("trl.DPOTrainer", "compute_ref_log_probs"),
    ("trl.DPOTrainer", "_compute_loss"),
)
_PATCH_FLAG = "_raipipe_compact_on_cpu"
_warned: set[str] = set()


class TRLCompatError(RuntimeError):
    """The installed TRL lacks an internal a workaround needs, or is outside the supported range."""


def _release(version: str) -> tuple[int, ...]:
    return Version(version).release


def check_trl_version(version: str | None = None) -> str:
    """Raise outside SUPPORTED; warn (once per version) above TESTED_UP_TO. Returns the version checked."""
    if version is None:
        import trl

        version = trl.__version__
    low, high = SUPPORTED
    got = _release(version)
    if not _release(low) <= got < _release(high):
        raise TRLCompatError(f"TRL {version} is outside the range raipipe's TRL workarounds support "
                             f"(>= {low}, < {high}); install a supported TRL or update raipipe.posttrain.trl_compat")
    if got[:2] > _release(TESTED_UP_TO)[:2] and version not in _warned:
        _warned.add(version)
        warnings.warn(f"TRL {version} is newer than the last release raipipe's TRL workarounds were checked "
                      f"against ({TESTED_UP_TO}); run tests/test_trl_compat.py", stacklevel=2)
    return version


def _require(owner: Any, name: str) -> Any:
    found = getattr(owner, name, None)
    if found is None:
        label = getattr(owner, "__name__", type(owner).__name__)
        raise TRLCompatError(f"{label}.{name} is gone in this TRL version; raipipe.posttrain.trl_compat "
                             "overrides it and must be updated")
    return found


@contextlib.contextmanager
def cpu_compact_head() -> Iterator[bool]:
    """Within the block, TRL's fused head scores answer positions only on CPU too; restored on exit.

    Yields whether the switch is in effect; a TRL without the hook logs a warning and trains as it is
    (slower, same results)."""
    from trl.trainer import utils as trl_utils

    original = getattr(trl_utils, "_use_triton", None)
    if original is None:
        log.warning("this TRL version has no trl.trainer.utils._use_triton: the LM head scores every position "
                    "on CPU (slower training, same results)")
        yield False
        return
    if getattr(original, _PATCH_FLAG, False):  # an enclosing block already switched it
        yield True
        return

    def compact_on_cpu(device) -> bool:
        # Only the position selection in add_fused_lm_head reads this name; the kernels module keeps its own
        # _use_triton, so CPU still runs the plain-PyTorch tiles.
        return device.type == "cpu" or original(device)

    setattr(compact_on_cpu, _PATCH_FLAG, True)
    trl_utils._use_triton = compact_on_cpu
    try:
        yield True
    finally:
        trl_utils._use_triton = original


def answer_capped(trainer_class: type, max_answer_tokens: int) -> type:
    """A DPO trainer that keeps every prompt whole and the first `max_answer_tokens` of each answer."""
    _require(trainer_class, "_prepare_dataset")

    def cap(example: dict[str, Any]) -> dict[str, Any]:
        return {"chosen_ids": example["chosen_ids"][:max_answer_tokens],
                "rejected_ids": example["rejected_ids"][:max_answer_tokens]}

    class AnswerCappedDPOTrainer(trainer_class):
        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            dataset = super()._prepare_dataset(dataset, processing_class, args, dataset_name)
            return dataset.map(cap, desc=f"Keeping {max_answer_tokens} answer tokens per pair ({dataset_name})")

    return AnswerCappedDPOTrainer


def prompt_sharing(trainer_class: type) -> type:
    """A DPO trainer whose reference pass and training steps compute each pair's prompt once."""
    _require(trainer_class, "compute_ref_log_probs")
    _require(trainer_class, "_compute_loss")

    class PromptSharingDPOTrainer(trainer_class):
        def compute_ref_log_probs(self, model, inputs):
            with sharing_prompts(self.accelerator.unwrap_model(model)):
                return super().compute_ref_log_probs(model, inputs)

        def _compute_loss(self, model, inputs, return_outputs):
            with sharing_prompts(self.accelerator.unwrap_model(model)):
                return super()._compute_loss(model, inputs, return_outputs)

    return PromptSharingDPOTrainer


def dpo_trainer_class(max_answer_tokens: int | None, share_prompt_pass: bool) -> type:
    """TRL's DPOTrainer with the workarounds the settings ask for (version checked first)."""
    from trl import DPOTrainer

    check_trl_version()
    trainer_class: type = DPOTrainer
    if max_answer_tokens:
        trainer_class = answer_capped(trainer_class, max_answer_tokens)
    return prompt_sharing(trainer_class) if share_prompt_pass else trainer_class


def reward_func_names(funcs: Sequence[Callable[..., Any]]) -> list[str]:
    """The names TRL logs reward functions under (its own helper, so the names match its logs)."""
    from trl.trainer import utils as trl_utils

    return [_require(trl_utils, "get_callable_name")(f) for f in funcs]
