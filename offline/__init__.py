"""A local twin of a synthesized stage: API Gateway (WebSocket + @connections), Lambda,
DynamoDB and Secrets Manager, built from the stage's templates in `cdk.out`.

`python -m offline` (what `make dev` runs) and the tests both use `offline.cloud.OfflineCloud`:
- `template.py` / `blueprint.py`: the cloud assembly read, intrinsics resolved, and what
  to run (tables, secrets, functions, the API, roles);
- `image.py` / `runtimes.py`: a function's code path: an image laid out from its
  Dockerfile, a zip's staged asset, layers, the runtime's boto3;
- `worker_process.py` / `lambda_worker.py`: one isolated execution environment;
  `instance_pool.py`: warm reuse, cold starts, provisioned instances;
  `event_queue.py`: asynchronous invocation; `lambda_function.py`: one function;
- `gateway.py` / `events.py`: the WebSocket API and the events it gives the functions;
- `connections_api.py` / `invoke_api.py`: the `@connections` and Invoke APIs;
- `iam.py` / `access.py`: each function's role, checked on every call it makes;
- `moto_process.py` / `fault_proxy.py`: moto's server and the proxy before it;
- `static_site.py` / `serving.py`: the stage's page, and the servers' thread;

The architecture doc's "How the twin maps the template" says what each type becomes.
"""
