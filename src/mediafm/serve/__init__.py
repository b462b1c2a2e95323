"""The explorer: a local web app over a store, a model's predictions and search.

``catalog.Catalog`` computes what is shown (no web code); ``app.create_app`` is the FastAPI app
(JSON API + the static page in ``static/``); ``mediafm serve`` runs it under uvicorn.
"""
