"""Kubernetes operator (kopf): handlers and object builders. Never imports torch."""
