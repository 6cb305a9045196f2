"""`app.py serve`: a search page over the flow's gateways (text, upload, "more like this", compare)."""
