"""Per-route migration features as request steps and pure verdicts: canary choice (`canary`),
shadow tee and comparison workers (`shadow`), fallback replay (`fallback`), response diffs
(`diff`), the guard's windows and verdict (`guard`). Knows nothing of the admin side.
"""
