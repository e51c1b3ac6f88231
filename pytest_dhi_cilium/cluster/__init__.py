"""Cluster tier: the only code that talks to kind, helm and Kubernetes. Nothing here is
imported unless the cluster tier runs (options.py excepted: it imports nothing heavy)."""
