"""Per-route migration features as request steps and pure verdicts: canary choice, shadow tee
and comparison, fallback replay, response diffs, the guard's verdict.
"""
