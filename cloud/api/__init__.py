"""HTTP API of the cloud service (FastAPI)."""
