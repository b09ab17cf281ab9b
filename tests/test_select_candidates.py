"""Which checkpoints selection grades: the in-training probe drops only the clearly bad ones."""

from pathlib import Path

from raipipe.posttrain.candidates import ProbePoint, prune_by_probe

CKPTS = [(10, Path("checkpoint-10")), (20, Path("checkpoint-20")), (30, Path("checkpoint-30"))]


def _curve(**over_refusal_low):
    rows = {0: ProbePoint(step=0, violation_rate=0.5, over_refusal_rate=0.1, over_refusal_low=0.02)}
    for step, viol in ((10, 0.4), (20, 0.2), (30, 0.1)):
        rows[step] = ProbePoint(step=step, violation_rate=viol, over_refusal_rate=0.3,
                                over_refusal_low=over_refusal_low.get(f"s{step}", 0.1))
    return rows


def test_clearly_over_refusing_checkpoints_are_not_graded():
    kept, reasons = prune_by_probe(CKPTS, _curve(s30=0.4), margin=0.15, max_graded=None)
    assert [s for s, _ in kept] == [10, 20]
    assert len(reasons) == 1 and reasons[0].startswith("checkpoint-30: not graded") and "step 0's 10%" in reasons[0]


def test_noisy_probe_rates_alone_drop_nothing():
    kept, reasons = prune_by_probe(CKPTS, _curve(), margin=0.15, max_graded=None)
    assert kept == CKPTS and reasons == []


def test_max_graded_keeps_the_fewest_probe_violations_in_step_order():
    kept, reasons = prune_by_probe(CKPTS, _curve(), margin=0.15, max_graded=2)
    assert [s for s, _ in kept] == [20, 30]
    assert reasons == ["checkpoint-10: not graded — more probe violations than the 2 graded checkpoint(s)"]


def test_without_a_probe_curve_every_checkpoint_is_graded():
    assert prune_by_probe(CKPTS, {}, margin=0.15, max_graded=None) == (CKPTS, [])


def test_the_last_periodic_save_just_before_the_final_one_is_not_graded_twice():
    ckpts = [(55, Path("checkpoint-55")), (165, Path("checkpoint-165")), (166, Path("checkpoint-166"))]
    kept, reasons = prune_by_probe(ckpts, {}, margin=0.15, max_graded=2)
    assert [s for s, _ in kept] == [55, 166]
    assert reasons == ["checkpoint-165: not graded — only 1 step(s) before checkpoint-166"]


def test_checkpoints_saved_every_step_are_all_graded():
    ckpts = [(1, Path("checkpoint-1")), (2, Path("checkpoint-2"))]
    assert prune_by_probe(ckpts, {}, margin=0.15, max_graded=None) == (ckpts, [])


def test_the_final_checkpoint_keeps_a_graded_place_whatever_its_probe_violations():
    curve = _curve()
    curve[30] = ProbePoint(step=30, violation_rate=0.6, over_refusal_rate=0.3, over_refusal_low=0.1)
    kept, reasons = prune_by_probe(CKPTS, curve, margin=0.15, max_graded=2, grade_final=True)
    assert [s for s, _ in kept] == [20, 30]
    assert reasons == ["checkpoint-10: not graded — more probe violations than the 2 graded checkpoint(s)"]
    without, _ = prune_by_probe(CKPTS, curve, margin=0.15, max_graded=2)
    assert [s for s, _ in without] == [10, 20]


def test_a_final_checkpoint_the_probe_rules_out_is_still_not_graded():
    kept, reasons = prune_by_probe(CKPTS, _curve(s30=0.4), margin=0.15, max_graded=1, grade_final=True)
    assert [s for s, _ in kept] == [20]
    assert reasons[0].startswith("checkpoint-30: not graded — probe over-refusal")
