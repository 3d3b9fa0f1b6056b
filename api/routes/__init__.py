
__all__: list[str] = []
"""The API's routers, one module per resource."""
