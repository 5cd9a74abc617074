"""Agent self-update: download a signed release, check it, install it beside the running one.

The update client knows nothing about the agent it updates (Mender's rule): it fetches a
bundle (``wire.release``), verifies signature, sizes and hashes before it changes anything,
installs the release into its own directory and switches the ``current`` link. Whether the
new version stays is not its decision: the launcher (``firmware_config/launcher``), which
runs whatever ``current`` points to, keeps it only if it proves healthy (a birth the broker
acknowledged) within the trial window, and goes back to the previous version by itself
otherwise. ``apply_update`` is the entry point of the ``update`` command; ``commune-iot
edge update`` calls the same code from a shell.
"""

from edge.update.apply import Result, apply_bundle, apply_update
from edge.update.config import UpdateConfig

__all__ = ["Result", "UpdateConfig", "apply_bundle", "apply_update"]
