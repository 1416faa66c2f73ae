"""Sources of the Topology: a manifests directory, or the Kubernetes API."""
