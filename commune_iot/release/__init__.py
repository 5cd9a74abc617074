"""``commune-iot release``: release keys, signed update bundles, publishing and rollouts.

``keygen`` and ``build`` run on a maintainer's machine, where the private release key
stays; ``publish``, ``list`` and ``rollout`` run beside the cloud service (they need its
configuration, never the private key). See docs/updates.md.
"""
