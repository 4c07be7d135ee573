"""The files logged as the code of this project's MLflow models (models from code); each calls
mlflow.models.set_model when MLflow runs it, so nothing here is imported by the package."""
