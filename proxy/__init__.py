"""strangler: a strangler-fig migration proxy."""
