"""Access control: hashed tokens with a role on one project or on all.

Must not import the API.
"""
