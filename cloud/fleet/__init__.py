"""The fleet: what the cloud knows and decides about the boards as a whole.

``releases``: signed agent bundles the cloud stores and serves (it cannot sign them);
``boardauth``: how a board proves who it is over HTTPS (its broker credentials);
``rollout``: staged updates, a canary first, then commune by commune, paused on a failure.
"""
