"""Artifact storage over fsspec (a local folder or S3), with checksums and scratch space.

Keys are made by the server, never by a client. Must not import the API.
"""
