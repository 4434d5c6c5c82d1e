"""Stage 02, exploration: EDA figures and the platform analytics questions.
"""
