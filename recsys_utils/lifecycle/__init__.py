"""Stage 05 and retraining: the model registry, retraining and monitoring.
"""
