"""A job whose code fails every time."""


def main(params):
    print("about to fail", flush=True)
    raise ValueError(f"column {params['column']!r} has no numbers")
