"""``commune-iot provision``: broker credentials, ACLs and the install bundle of each board.

``ca`` creates the project's CA and the broker's TLS certificate (openssl), ``broker``
keeps Mosquitto's password and ACL files (one user per board, each allowed only its own
topics) and reloads the broker, ``files`` replaces any file the broker reads without
changing who may read it, ``bundle`` writes what to copy onto a board. Secrets are generated
here and written only into the broker directory and the bundle, never into the repository.
"""
