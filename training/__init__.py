"""Data ingestion, training, evaluation and model registration for cats-dogs-classifier."""
