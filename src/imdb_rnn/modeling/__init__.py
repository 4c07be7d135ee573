"""Models: the registry of builders, the input feed, the one fit path and the one predict path."""

from imdb_rnn.layout import MODEL_FILE, PREPROCESSING_FILE, RUN_FILE, SUMMARY_FILE
from imdb_rnn.modeling.fit import (Arrays, Recipe, Stopping, TrainResult, build, compile_model,
                                   fit, recipe_for)
from imdb_rnn.modeling.inputs import InputShape, input_shape_for, make_dataset
from imdb_rnn.modeling.predict import Predictor, predict_probabilities
from imdb_rnn.modeling.registry import (MODEL_BUILDERS, PIPELINE_FAMILIES, build_model,
                                        builder_arguments, get_builder, load_model, register)

__all__ = ["MODEL_BUILDERS", "MODEL_FILE", "PIPELINE_FAMILIES", "PREPROCESSING_FILE", "RUN_FILE",
           "SUMMARY_FILE", "Arrays", "InputShape", "Predictor", "Recipe", "Stopping",
           "TrainResult", "build", "build_model", "builder_arguments", "compile_model", "fit",
           "get_builder", "input_shape_for", "load_model", "make_dataset",
           "predict_probabilities", "recipe_for", "register"]
