"""A chat in a terminal for a deployed llambda stage or `make dev`'s twin.

- `messages.py`: the frames a client sends (docs/protocol.md) and the `?token=` URL;
- `client.py`: `ChatClient`, one connection at a time to a conversation that outlives it,
  and a reply that survives a dropped connection (reconnect, `attach` with the last seq);
- `export.py`: a conversation's history as Markdown or JSON;
- `cli.py`: the interactive front end, `python -m terminal_client URL [--token T]`.

The client needs only the standard library and `websockets`: the pipeline's smoke step
(`python -m terminal_client.smoke`) and `make bench` use it too.
"""
