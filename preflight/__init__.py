"""Before a deploy: what in this AWS account would make it fail, and how to fix it.

    make preflight                 # or: .venv/bin/python -m preflight [--stage Dev] [-c k=v]

Reads the account with the current credentials (Lambda's concurrency and memory limits,
the CDK bootstrap, API Gateway's CloudWatch Logs role, the stages' secrets once deployed,
the pipeline's connection and model source when `pipeline` is set) and this machine
(the model files, Docker). It only ever calls Get*, Describe*, List* and Head* APIs: the
session refuses anything else (`read_only`), so it never changes the account.
"""
