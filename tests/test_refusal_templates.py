"""Policy-written refusal candidates: every language and pillar covered, deterministic, validated."""

from __future__ import annotations

import pytest

from raipipe.policy.loader import PolicyError
from raipipe.policy.schema import Pillar
from raipipe.posttrain.refusal_templates import load_templates


def test_shipped_templates_cover_every_pillar_in_every_language():
    templates, digest = load_templates()
    assert {"en", "es", "fr"} <= set(templates.root) and len(digest) == 16
    for lang, block in templates.root.items():
        assert set(block.reasons) == set(Pillar), lang


def test_refusal_is_deterministic_in_the_prompts_language_with_english_fallback():
    templates, _ = load_templates()
    es = templates.refusal("sa-001-h", "es", "safety")
    assert es == templates.refusal("sa-001-h", "es", Pillar.SAFETY)
    assert templates.root["es"].reasons[Pillar.SAFETY] in es
    assert templates.refusal("x", "de", "safety").endswith(tuple(templates.root["en"].offers))
    # Different records get different wordings (opener/offer), so the model does not learn one string.
    assert len({templates.refusal(f"r{i}", "en", "fairness") for i in range(40)}) > 3


def test_missing_pillar_is_a_load_error_naming_file_line_and_field(tmp_path):
    bad = tmp_path / "t.yaml"
    bad.write_text("en:\n  openers: [No.]\n  reasons:\n    safety: harmful\n  offers: [Ask me something else.]\n")
    with pytest.raises(PolicyError, match=r"t\.yaml:\d+: field 'en\.reasons'.*missing a reason"):
        load_templates(bad)
