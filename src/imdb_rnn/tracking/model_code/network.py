"""The code of a logged network (MLflow model from code): imdb_rnn's own ReviewSentiment."""

from mlflow.models import set_model

from imdb_rnn.tracking.served import ReviewSentiment

set_model(ReviewSentiment())
