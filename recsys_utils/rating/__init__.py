"""Stage 03, rating models (predict a user's score for a title): the surprise adapter,
the predictors, the ridge blend, cross-validation, tuning, their figures, and
``modeling.run_modeling``, the step in one call.
"""
