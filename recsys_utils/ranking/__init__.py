"""Stage 04, ranking (order titles for a user): the recommender, top-N metrics and
the offline evaluation.
"""
