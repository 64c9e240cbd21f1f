"""llambda: a compressed LLM in AWS Lambda, streamed over an API Gateway WebSocket."""
