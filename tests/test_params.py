"""The typed params model: the real params.yaml loads; typos and wrong types name the key."""


import pytest
import yaml
from pydantic import ValidationError

from conftest import ROOT

from imdb_rnn.errors import PipelineError
from imdb_rnn.config.params import load_params, parse_params



@pytest.fixture
def raw():
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_project_params_load():
    params = load_params(ROOT / "params.yaml")
    assert params.vectorize.max_features > 2
    with pytest.raises(ValidationError, match="frozen"):
        params.vectorize.max_features = 5  # frozen


def test_misspelt_key_is_named(raw):
    raw["preprocess"]["lowercse"] = raw["preprocess"].pop("lowercase")
    with pytest.raises(PipelineError, match=r"^params.yaml: preprocess.lowercse: unknown key"):
        parse_params(raw)


def test_string_where_a_number_belongs_is_named(raw):
    raw["vectorize"]["max_features"] = "20000"
    with pytest.raises(PipelineError, match=r"vectorize.max_features: .*integer.*'20000'"):
        parse_params(raw)


def test_missing_section_is_named(raw):
    del raw["fetch"]
    with pytest.raises(PipelineError, match=r"fetch: missing key"):
        parse_params(raw)


def test_model_key_error_names_the_model_not_the_family_tag(raw):
    name = next(iter(raw["train"]["models"]))
    raw["train"]["models"][name]["unitz"] = 3
    with pytest.raises(PipelineError, match=rf"train.models.{name}.unitz: unknown key"):
        parse_params(raw)


def test_unknown_family_is_an_error(raw):
    name = next(iter(raw["train"]["models"]))
    raw["train"]["models"][name]["family"] = "transformer"
    with pytest.raises(PipelineError, match=rf"train.models.{name}"):
        parse_params(raw)


def test_invalid_yaml_is_one_line(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("fetch: [unclosed\n")
    with pytest.raises(PipelineError, match=r"is not valid YAML") as info:
        load_params(bad)
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(PipelineError, match="not found"):
        load_params(tmp_path / "nope.yaml")


def test_a_profile_overrides_the_file_and_an_unknown_one_is_named():
    from imdb_rnn.config.params import apply_profile

    data = {"profile": "smoke", "a": {"b": 1, "c": {"d": 2, "e": 3}},
            "profiles": {"smoke": {"a": {"c": {"d": 9}}}}}
    assert apply_profile(data) == {"a": {"b": 1, "c": {"d": 9, "e": 3}}}
    assert apply_profile({**data, "profile": "full"}) == {"a": {"b": 1, "c": {"d": 2, "e": 3}}}
    with pytest.raises(PipelineError, match="profile: 'fast' is not 'full' or a key of profiles "
                                            r"\(smoke\)"):
        apply_profile({**data, "profile": "fast"})
