"""Ray actors: site shards (each hosts one or more sites) and the ADMM coordinator."""

__all__: list[str] = []
