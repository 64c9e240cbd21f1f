"""The local twin of API Gateway (WebSocket + @connections), Lambda and DynamoDB.

`python -m offline` (what `make dev` runs) and the tests both use `offline.cloud.OfflineCloud`:
- `gateway.py` / `events.py`: the WebSocket API and the events it gives the functions;
- `connections_api.py`: the `@connections` management API;
- `invoke_api.py` / `lambda_pool.py` / `lambda_worker.py`: Lambda's Invoke API and its
  execution model (one worker process per execution environment);
- `moto_process.py` / `fault_proxy.py`: moto's server and the fault-injecting proxy before it;
- `static_site.py`: the web client and its generated `/config.json`;
- `smoke.py`: the post-deploy smoke test (`python -m offline.smoke wss://...`).
"""
