"""Web client: server-side rendered pages over the marketplace APIs."""
