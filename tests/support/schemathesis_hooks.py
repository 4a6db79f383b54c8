"""Hooks the schemathesis CLI loads (SCHEMATHESIS_HOOKS) for tests/e2e/test_openapi_contract.py."""

import schemathesis

# tus PATCH bodies are raw bytes, like application/octet-stream, under their own media type.
schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")
