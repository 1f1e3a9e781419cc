"""OpenAI-compatible gateway: pure routing policies (routing.py) and, later, the HTTP server."""
