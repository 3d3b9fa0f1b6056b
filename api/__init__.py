"""vpp's REST API: FastAPI routers served by Ray Serve (``vpp serve``)."""
