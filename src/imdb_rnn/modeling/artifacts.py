"""What a trained model's folder holds: the names of its files."""

MODEL_FILE = "model.keras"  # the Keras model (custom layers registered by modeling.registry)
PREPROCESSING_FILE = "preprocessing.json"  # text standardisation and input shape settings
RUN_FILE = "run.json"  # the MLflow run that trained it
SUMMARY_FILE = "summary.txt"  # Keras' model summary
