"""Property tests: whatever bytes a user feeds the loaders, they answer with a typed error or a result
whose accounting holds, never an unrelated exception."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raipipe.data.io import DatasetError, load_jsonl
from raipipe.errors import ConfigError, PolicyError
from raipipe.evaluate.config import EvalConfig
from raipipe.policy.loader import PackInfo, parse_yaml_model
from raipipe.policy.schema import Policy

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_json_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
_json = st.recursive(_json_scalar, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(
    st.text(max_size=8), kids, max_size=4), max_leaves=10)
_record_like = st.fixed_dictionaries(
    {"id": st.text(max_size=4), "prompt": st.text(max_size=10)},
    optional={"label": st.sampled_from(["harmful", "benign", "other", ""]),
              "pillar": st.sampled_from(["safety", "fairness", "nope"]),
              "language": st.text(max_size=10),
              "source": st.just({"kind": "team_written", "name": "t"}) | _json,
              "extra": _json})
_line = st.one_of(
    _record_like.map(json.dumps),
    _json.map(json.dumps),
    st.text(max_size=40).map(lambda s: s.replace("\n", " ")),
    st.just(""),
    st.just("   "),
)
_raw = st.one_of(
    st.lists(_line, max_size=8).map(lambda ls: "\n".join(ls).encode()),
    st.binary(max_size=200),
)


def _write(data: bytes, suffix: str) -> Path:
    fd, name = tempfile.mkstemp(suffix=suffix)
    with open(fd, "wb") as fh:
        fh.write(data)
    return Path(name)


@SETTINGS
@given(data=_raw)
def test_jsonl_quarantine_accounts_for_every_line(data: bytes) -> None:
    path = _write(data, ".jsonl")
    try:
        result = load_jsonl(path, on_error="quarantine")
        assert len(result.records) + len(result.skipped) + len(result.quarantined) == result.total_lines
        assert len({r.id for r in result.records}) == len(result.records)
    finally:
        path.unlink()


@SETTINGS
@given(data=_raw)
def test_jsonl_raise_mode_raises_only_dataset_errors(data: bytes) -> None:
    path = _write(data, ".jsonl")
    try:
        result = load_jsonl(path)
        assert not result.quarantined
    except DatasetError as exc:
        assert str(path) in str(exc)
    finally:
        path.unlink()


_yaml_text = st.one_of(
    st.text(max_size=120),
    _json.map(lambda v: json.dumps(v)),  # JSON is YAML
    st.dictionaries(st.sampled_from(["id", "version", "pillar", "title", "model", "datasets", "limit", "name",
                                     "judges", "params", "colour"]),
                    _json, max_size=6).map(lambda d: "\n".join(f"{k}: {json.dumps(v)}" for k, v in d.items())),
)


@SETTINGS
@given(text=_yaml_text)
def test_policy_and_pack_yaml_raise_only_policy_errors(text: str) -> None:
    for model in (Policy, PackInfo):
        try:
            parse_yaml_model(Path("p.yaml"), model, text=text)
        except PolicyError as exc:
            assert str(exc).startswith("p.yaml")


@SETTINGS
@given(text=_yaml_text)
def test_eval_config_yaml_raises_only_config_errors(text: str) -> None:
    try:
        cfg = parse_yaml_model(Path("c.yaml"), EvalConfig, text=text, error=ConfigError)
        assert cfg.datasets
    except ConfigError as exc:
        assert str(exc).startswith("c.yaml")


@SETTINGS
@given(data=st.binary(max_size=120))
def test_policy_file_bytes_raise_only_policy_errors(data: bytes) -> None:
    path = _write(data, ".yaml")
    try:
        parse_yaml_model(path, Policy)
    except PolicyError as exc:
        assert exc.path == str(path)
    finally:
        path.unlink()
