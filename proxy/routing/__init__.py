"""The routing table and where it comes from: the model and its pure match, the one YAML
parser, JSONPath, reload, and one-line edits of routes.yaml. Imports nothing from the request
path, the metrics or the admin side.
"""
