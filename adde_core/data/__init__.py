"""Getting data into a project: ingest from folders, manifests and embeddings, and the demo dataset."""
