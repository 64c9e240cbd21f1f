"""Lambda entry points: router, inference, authorizer, dispatch_failure."""
