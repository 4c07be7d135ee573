"""The code of the logged TF-IDF reference (MLflow model from code): imdb_rnn's own scoring."""

from mlflow.models import set_model

from imdb_rnn.tracking.served import ReferenceSentiment

set_model(ReferenceSentiment())
