"""vpp's REST API: FastAPI routers served by Ray Serve (``vpp serve``)."""

__all__: list[str] = []
