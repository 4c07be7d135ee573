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


def _models(raw: dict, profile: str | None = None) -> dict:
    section = raw if profile is None else raw["profiles"].setdefault(profile, {})
    return section.setdefault("train", {}).setdefault("models", {})


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda r: _models(r)["lstm"].update(family="lsmt"),
     "params.yaml: train.models.lstm.family: unknown value 'lsmt' (did you mean 'lstm'?); valid: "),
    (lambda r: _models(r, "smoke").setdefault("lstm", {}).update(epochz=3),
     "params.yaml: profiles.smoke.train.models.lstm.epochz: unknown key (did you mean 'epochs'?)"),
    (lambda r: _models(r, "smoke").setdefault("gru", {}).update(units="64"),
     "params.yaml: profiles.smoke.train.models.gru.units: Input should be a valid integer "
     "(got '64')"),
    (lambda r: r["preprocess"].update(punctuation="strp"),
     "preprocess.punctuation: Input should be 'keep', 'strip' or 'split' (got 'strp') "
     "(did you mean 'strip'?)"),
    (lambda r: next(iter(r["tune"]["studies"].values())).update(sampler="tpee"),
     "(did you mean 'tpe'?)"),
    (lambda r: r["tune"]["space"]["lstm"]["units"].update(lo=1),
     "tune.space.lstm.units.lo: unknown key (did you mean 'low'?)"),
    (lambda r: r.update(vectorise=r.pop("vectorize")),
     "params.yaml: vectorise: unknown key (did you mean 'vectorize'?)"),
    (lambda r: r["train"].update(patiense=r["train"].pop("patience")),
     "train.patiense: unknown key (did you mean 'patience'?)"),
    (lambda r: r.update(profile="smok"), "(did you mean 'smoke'?)"),
    (lambda r: _models(r)["lstm"].update(units="x" * 500),
     "train.models.lstm.units: Input should be a valid integer (got 'xxxxxxxxxxxx"),
])
def test_params_errors_fit_one_short_line_name_the_key_as_written_and_suggest(raw, edit, expected):
    raw = raw | {"profile": "smoke"} if "profiles.smoke" in expected else raw
    edit(raw)
    with pytest.raises(PipelineError) as info:
        parse_params(raw)
    message = str(info.value)
    assert expected in message, message
    assert "\n" not in message and len(message) <= 200, (len(message), message)


@pytest.mark.parametrize("profile", [["smoke"], {"smoke": 1}, 3])
def test_a_profile_that_is_not_a_name_is_one_line(raw, profile):
    with pytest.raises(PipelineError, match=r"params.yaml: profile: expected a profile name"):
        parse_params(raw | {"profile": profile})


# --- bounded sizes, finite floats, a training step that fits ------------------------------------

@pytest.mark.parametrize(("edit", "message"), [
    (lambda r: r["train"]["models"]["lstm"].update(learning_rate=float("inf")),
     "params.yaml: train.models.lstm.learning_rate: Input should be a finite number (got inf)"),
    (lambda r: r["train"]["models"]["lstm"].update(dropout=float("nan")),
     "params.yaml: train.models.lstm.dropout: Input should be a finite number (got nan)"),
    (lambda r: r["tune"]["space"]["gru"]["learning_rate"].update(high=float("inf")),
     "params.yaml: tune.space.gru.learning_rate.high: Input should be a finite number (got inf)"),
    (lambda r: r["train"]["models"]["lstm"].update(maxlen=100000),
     "params.yaml: train.models.lstm.maxlen: Input should be less than or equal to 3000 "
     "(got 100000)"),
    (lambda r: r["tune"]["space"]["gru"]["maxlen"].update(high=100000),
     "params.yaml: tune.space.gru.maxlen.high: Input should be less than or equal to 3000 "
     "(got 100000)"),
    (lambda r: r["tune"]["space"]["gru"]["batch_size"].update(choices=[128, 10**6]),
     "params.yaml: tune.space.gru.batch_size.choices[1]: Input should be less than or equal to "
     "4096 (got 1000000)"),
    (lambda r: r["vectorize"].update(max_features=10**8),
     "params.yaml: vectorize.max_features: Input should be less than or equal to 500000 "
     "(got 100000000)"),
    (lambda r: r["tune"].update(n_trials=10**6),
     "params.yaml: tune.n_trials: Input should be less than or equal to 10000 (got 1000000)"),
])
def test_sizes_are_bounded_and_floats_finite_naming_the_key(raw, edit, message):
    edit(raw)
    with pytest.raises(PipelineError) as error:
        parse_params(raw)
    assert str(error.value) == message


def test_a_training_step_over_the_memory_limit_is_refused_before_it_runs(raw):
    raw["train"]["models"]["lstm"].update(batch_size=4096, maxlen=3000)  # each within bounds
    with pytest.raises(PipelineError, match=r"^params.yaml: train.models.lstm: needs about "
                       r"\d+\.\d GB a training step \(batch_size 4096 x maxlen 3000 x "):
        parse_params(raw)


def test_the_largest_trial_of_a_search_space_must_fit_too(raw):
    raw["tune"]["space"]["gru"].update(maxlen={"low": 100, "high": 3000, "step": 50},
                                       units={"low": 16, "high": 2048, "log": True})
    with pytest.raises(PipelineError, match=r"^params.yaml: tune.space.gru: its largest trial "
                       r"\(batch_size \d+, maxlen 3000, .*units 2048\) needs about"):
        parse_params(raw)


def test_the_project_models_fit_at_the_largest_maxlen():
    """Each model section of params.yaml, at the largest maxlen allowed, fits the limit (the
    LSTM's estimate, 4.0 GB, against 4.2 GiB RSS measured for one epoch on the full data)."""
    from imdb_rnn.config.params import MAX_MAXLEN, MEMORY_LIMIT

    for name, section in load_params(ROOT / "params.yaml").train.models.items():
        assert section.model_copy(update={"maxlen": MAX_MAXLEN}).step_memory() < MEMORY_LIMIT, name
