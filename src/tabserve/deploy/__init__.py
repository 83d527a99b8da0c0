"""Deployment: render a model's Dockerfile, compose stack and Kubernetes manifests, build images.

render.py       `tabserve deploy`: templates/ (package data) -> an output folder
context.py      the Docker build context: wheel, lock, seeded registry
wheel.py        a wheel of the installed tabserve, so images need no package index
build.py        `tabserve build`: render the context and run the Docker engine's BuildKit
healthcheck.py  the container's HEALTHCHECK probe (standard library only)
"""
