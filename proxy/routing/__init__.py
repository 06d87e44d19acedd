"""The routing table and where it comes from. Imports nothing from the request path, the metrics
or the admin side.

- `model`: the table as immutable data and its pure `match` / `routing_key`
- `rules`: what routes.yaml may hold: keys, names, value rules, `parse_url`, `parse_sticky`
- `nodes`: YAML read as marked nodes, every error kept with its line
- `parser`: the one reader of routes.yaml (`load_table`, `parse_table`)
- `jsonpath`: the JSONPath subset of `shadow.ignore`
- `reload`: the file re-read off the loop (SIGHUP, directory watcher, after an edit), in order
- `edit`: one-value atomic edits of routes.yaml (flip, rollback) and their audit log
"""
