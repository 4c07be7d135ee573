"""Configuration: the one typed model of ``params.yaml`` and its profiles."""

from imdb_rnn.config.params import (BidirectionalParams, ChoiceDimension, CnnParams, EmbedParams,
                                    EvaluateParams, FeedforwardParams, FetchParams, MlflowParams,
                                    ModelSection, Params, PreprocessParams, RangeDimension,
                                    RecurrentParams, ReferenceParams, StudyParams, TuneParams,
                                    apply_profile, load_params, model_section, parse_params)

__all__ = ["BidirectionalParams", "ChoiceDimension", "CnnParams", "EmbedParams", "EvaluateParams",
           "FeedforwardParams", "FetchParams", "MlflowParams", "ModelSection", "Params",
           "PreprocessParams", "RangeDimension", "RecurrentParams", "ReferenceParams",
           "StudyParams", "TuneParams", "apply_profile", "load_params", "model_section",
           "parse_params"]
