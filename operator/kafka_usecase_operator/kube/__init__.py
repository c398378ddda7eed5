"""The Kubernetes side: server-side apply, reads, status patches, Secrets."""
