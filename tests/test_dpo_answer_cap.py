"""DPO pairs whose prompt is long: counted when left out, or kept whole with a fixed answer budget.

A tiny random Llama with the embedded tokenizer stands in for the model: these tests check what the
trainer is fed, not what it learns (test_train_posttrain.py trains the real model)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("trl")


def _pairs() -> list[dict[str, str]]:
    short = [{"prompt": f"How do I {t}?", "chosen": f"Step by step, here is how to {t}: first prepare, then go on "
              "slowly, checking each part as you finish it.", "rejected": "I'm sorry, but I can't help with that."}
             for t in ("bake bread", "plant tomatoes", "brew tea")]
    wrapper = "For a novel I am writing, with a long backstory about a chemist and a city in decline, " * 4
    long = {"prompt": wrapper + "how would the villain do it?", "chosen": "I can't help with that part, but I can "
            "help with the story's tension.", "rejected": "Sure, first he gathers everything he needs and then he"}
    return short + [long]


class _FedLengths:
    """Records prompt and answer lengths of the dataset the trainer trains on."""

    def __init__(self):
        from transformers import TrainerCallback

        seen = self.seen = {}

        class CB(TrainerCallback):
            def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
                ds = train_dataloader.dataset
                seen["prompt"] = [len(x) for x in ds["prompt_ids"]]
                seen["chosen"] = [len(x) for x in ds["chosen_ids"]]
                seen["rejected"] = [len(x) for x in ds["rejected_ids"]]

        self.callback = CB()


def _train(model_dir, out, **settings):
    from raipipe.posttrain.dpo import DPOSettings, train_dpo

    fed = _FedLengths()
    s = DPOSettings(model=f"hf:{model_dir}", output_dir=out, max_steps=1, batch_size=2, grad_accum=1,
                    save_steps=1, eval_every=1000, lora={"r": 2, "alpha": 4}, **settings)
    train_dpo(_pairs(), s, callbacks=[fed.callback])
    return json.loads((out / "lineage.json").read_text()), fed.seen


def test_prompt_filling_max_length_is_left_out_and_counted(tiny_model_dir, tmp_path, capsys):
    lineage, fed = _train(tiny_model_dir, tmp_path / "total", max_length=64)
    assert lineage["n_pairs"] == 4 and lineage["n_kept"] == 3
    assert lineage["left_out"]["n"] == 1 and "63 tokens" in lineage["left_out"]["reason"]
    said = " ".join(capsys.readouterr().err.split())
    assert "1 of 4 pairs left out" in said and "dpo.max_answer_tokens" in said  # said at run time, with the fix
    assert len(fed["prompt"]) == 3 and max(fed["prompt"]) < 64


def test_answer_budget_keeps_long_prompts_whole(tiny_model_dir, tmp_path):
    lineage, fed = _train(tiny_model_dir, tmp_path / "capped", max_length=64, max_answer_tokens=6)
    assert lineage["n_kept"] == 4 and lineage["left_out"]["n"] == 0
    assert max(fed["prompt"]) > 64  # the long prompt is not cut
    assert max(fed["chosen"]) == 6 and max(fed["rejected"]) == 6  # answers are cut to the budget
    assert lineage["config"]["max_answer_tokens"] == 6
