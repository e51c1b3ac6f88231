"""Cluster-tier fixtures and hooks; registered as a plugin only when the cluster tier runs."""
